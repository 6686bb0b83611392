// GoogleTest main for every suite: exports the build's paths as environment variables
// (LINEARARD_SOURCE_DIR, LINEARARD_FIXTURES_DIR, LINEARARD_PYTHON, LINEARARD_BIN) unless already set.
#include <gtest/gtest.h>

#include <cstdlib>

int main(int argc, char** argv) {
  setenv("LINEARARD_SOURCE_DIR", LINEARARD_TEST_SOURCE_DIR, /*overwrite=*/0);
  setenv("LINEARARD_FIXTURES_DIR", LINEARARD_TEST_FIXTURES_DIR, 0);
  setenv("LINEARARD_PYTHON", LINEARARD_TEST_PYTHON, 0);
  setenv("LINEARARD_BIN", LINEARARD_TEST_BIN, 0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
