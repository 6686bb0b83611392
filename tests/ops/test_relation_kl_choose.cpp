// choose_kernel (src/ops/relation_kl/relation_kl_choose.h) on CPU: the kernel family each kind of
// call gets on an A100 (sm_80) and an H100 (sm_90), per head dim, element type and switch setting.
// The GPU test (test_relation_kl_cuda.cpp) checks the numerics of each family; this one pins which
// family runs, so a change of the decision shows up here first.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/relation_kl/relation_kl_choose.h"

namespace linearard::ops {
namespace {

using K = RelationKLKernel;
using P = RelationKLPass;
using E = RelationKLDtype;  // element type

// Opt-in shared memory per block: 163 KB on A100, 227 KB on H100 / H200 (CUDA programming guide,
// "Technical Specifications per Compute Capability").
constexpr RelationKLDeviceCaps kA100{80, 166912};
constexpr RelationKLDeviceCaps kH100{90, 232448};

struct Case {
  RelationKLDeviceCaps caps;
  P pass;
  int Ds, Dt;
  E dtype;
  KernelSwitches sw;
  K expected;
};

KernelSwitches defaults() { return KernelSwitches{}; }
KernelSwitches no_wgmma() {
  KernelSwitches s;
  s.wgmma = false;
  return s;
}
KernelSwitches self_split() {
  KernelSwitches s;
  s.self_split = true;
  return s;
}
KernelSwitches fwd_cfg(int cfg, bool pipe_d64 = false) {
  KernelSwitches s;
  s.fwd_cfg = cfg;
  s.fwd_pipe_d64 = pipe_d64;
  return s;
}

K choose(const Case& c, float scale = 0.125f, bool packed = false) {
  RelationKLShape shape;
  shape.packed = packed;
  shape.B = 1, shape.H = 32, shape.Hk = 32, shape.Hkt = 32, shape.T = 4096;
  shape.Ds = c.Ds, shape.Dt = c.Dt;
  shape.scale_s = shape.scale_t = scale;
  return choose_kernel(c.pass, shape, c.dtype, c.caps, c.sw);
}

std::string describe(const Case& c) {
  static const char* const pass[] = {"forward", "backward", "self backward"};
  static const char* const dtype[] = {"bf16", "fp16", "fp32"};
  return std::string("sm_") + std::to_string(c.caps.arch) + " " + pass[static_cast<int>(c.pass)] +
         " Ds=" + std::to_string(c.Ds) + " Dt=" + std::to_string(c.Dt) + " " +
         dtype[static_cast<int>(c.dtype)] + " wgmma=" + std::to_string(c.sw.wgmma) +
         " self_split=" + std::to_string(c.sw.self_split) + " fwd_cfg=" + std::to_string(c.sw.fwd_cfg) +
         " fwd_pipe_d64=" + std::to_string(c.sw.fwd_pipe_d64);
}

TEST(RelationKLChooseKernel, TableOfNamedChoices) {
  const std::vector<Case> cases = {
      // H100: warpgroup MMA for the forward and the self backward at D in {64, 128}.
      {kH100, P::kForward, 128, 128, E::kBF16, defaults(), K::kFwdWgmma},
      {kH100, P::kForward, 64, 64, E::kFP16, defaults(), K::kFwdWgmma},
      {kH100, P::kForward, 64, 128, E::kBF16, defaults(), K::kFwdWgmma},
      {kH100, P::kSelfBackward, 128, 128, E::kBF16, defaults(), K::kSelfBwdWgmma},
      {kH100, P::kSelfBackward, 64, 64, E::kFP16, defaults(), K::kSelfBwdWgmma},
      // ... the general backward always on the mma.sync row and column kernels.
      {kH100, P::kBackward, 128, 128, E::kBF16, defaults(), K::kBwdMma},
      {kH100, P::kBackward, 64, 64, E::kFP16, defaults(), K::kBwdMma},
      // ... head dims 80 / 96: mma.sync (pipelined forward, fused fixed-point self backward).
      {kH100, P::kForward, 80, 80, E::kBF16, defaults(), K::kFwdMmaPipe8x32x2},
      {kH100, P::kForward, 96, 96, E::kFP16, defaults(), K::kFwdMmaPipe8x32x2},
      {kH100, P::kSelfBackward, 96, 96, E::kBF16, defaults(), K::kSelfBwdMmaPipe},
      {kH100, P::kSelfBackward, 80, 80, E::kFP16, defaults(), K::kSelfBwdMmaPipe},
      {kH100, P::kBackward, 80, 80, E::kBF16, defaults(), K::kBwdMma},
      // ... LINEARARD_RKL_WGMMA=0: the A100 kernels, with H100's shared memory (fused self bwd).
      {kH100, P::kForward, 128, 128, E::kBF16, no_wgmma(), K::kFwdMmaPipe8x32x2},
      {kH100, P::kForward, 64, 64, E::kBF16, no_wgmma(), K::kFwdMma},
      {kH100, P::kSelfBackward, 128, 128, E::kBF16, no_wgmma(), K::kSelfBwdMmaPipe},
      {kH100, P::kSelfBackward, 64, 64, E::kFP16, no_wgmma(), K::kSelfBwdMmaPipe},
      // ... LINEARARD_RKL_SELF_SPLIT=1 only matters where the wgmma kernels do not run.
      {kH100, P::kSelfBackward, 128, 128, E::kBF16, self_split(), K::kSelfBwdWgmma},
      {kH100, P::kSelfBackward, 96, 96, E::kBF16, self_split(), K::kSelfBwdMmaSplit},
      // ... fp32: SIMT for every pass and head dim.
      {kH100, P::kForward, 128, 128, E::kFP32, defaults(), K::kFwdSimt},
      {kH100, P::kBackward, 64, 64, E::kFP32, defaults(), K::kBwdSimt},
      {kH100, P::kSelfBackward, 96, 96, E::kFP32, defaults(), K::kSelfBwdSimt},
      // A100: no wgmma; the fused self backward fits at Ds <= 64 only (161792 <= 166912 bytes).
      {kA100, P::kForward, 128, 128, E::kBF16, defaults(), K::kFwdMmaPipe8x32x2},
      {kA100, P::kForward, 64, 64, E::kBF16, defaults(), K::kFwdMma},
      {kA100, P::kForward, 96, 96, E::kFP16, defaults(), K::kFwdMmaPipe8x32x2},
      {kA100, P::kForward, 64, 128, E::kBF16, defaults(), K::kFwdMmaPipe8x32x2},
      {kA100, P::kSelfBackward, 128, 128, E::kBF16, defaults(), K::kSelfBwdMmaSplit},
      {kA100, P::kSelfBackward, 80, 80, E::kFP16, defaults(), K::kSelfBwdMmaSplit},
      {kA100, P::kSelfBackward, 96, 96, E::kBF16, defaults(), K::kSelfBwdMmaSplit},
      {kA100, P::kSelfBackward, 64, 64, E::kBF16, defaults(), K::kSelfBwdMmaPipe},
      {kA100, P::kSelfBackward, 64, 128, E::kFP16, defaults(), K::kSelfBwdMmaPipe},
      {kA100, P::kSelfBackward, 64, 64, E::kBF16, self_split(), K::kSelfBwdMmaSplit},
      {kA100, P::kBackward, 128, 128, E::kFP16, defaults(), K::kBwdMma},
      {kA100, P::kBackward, 96, 96, E::kFP32, defaults(), K::kBwdSimt},
      {kA100, P::kForward, 64, 64, E::kFP32, defaults(), K::kFwdSimt},
      {kA100, P::kSelfBackward, 128, 128, E::kFP32, defaults(), K::kSelfBwdSimt},
      // LINEARARD_RKL_FWD_CFG / FWD_PIPE64: the pipelined forward's CTA shape, and D = 64.
      {kA100, P::kForward, 128, 128, E::kBF16, fwd_cfg(0), K::kFwdMmaPipe8x64x1},
      {kA100, P::kForward, 128, 128, E::kBF16, fwd_cfg(2), K::kFwdMmaPipe4x32x3},
      {kA100, P::kForward, 64, 64, E::kBF16, fwd_cfg(1, true), K::kFwdMmaPipe8x32x2},
      {kA100, P::kForward, 64, 64, E::kBF16, fwd_cfg(2, true), K::kFwdMmaPipe4x32x3},
      {kH100, P::kForward, 128, 128, E::kBF16, fwd_cfg(0), K::kFwdWgmma},
      // Head dims the tensor cores do not take (not a multiple of 16, above 128): SIMT.
      {kH100, P::kForward, 72, 72, E::kBF16, defaults(), K::kFwdSimt},
      {kH100, P::kSelfBackward, 256, 256, E::kBF16, defaults(), K::kSelfBwdSimt},
      {kA100, P::kBackward, 160, 160, E::kFP16, defaults(), K::kBwdSimt},
      // An unknown device (attribute queries failed): mma.sync, self backward split.
      {RelationKLDeviceCaps{}, P::kSelfBackward, 64, 64, E::kBF16, defaults(), K::kSelfBwdMmaSplit},
  };
  for (const Case& c : cases) {
    EXPECT_STREQ(relation_kl_kernel_name(choose(c)), relation_kl_kernel_name(c.expected)) << describe(c);
    // Packed documents (issue 18): every family takes them, so the choice is the same.
    EXPECT_STREQ(relation_kl_kernel_name(choose(c, 0.125f, /*packed=*/true)),
                 relation_kl_kernel_name(c.expected))
        << describe(c) << " packed";
  }
}

TEST(RelationKLChooseKernel, NonPositiveScalesRunSimt) {
  const Case c{kH100, P::kForward, 128, 128, E::kBF16, defaults(), K::kFwdSimt};
  EXPECT_EQ(choose(c, 0.f), K::kFwdSimt);
  EXPECT_EQ(choose(c, -1.f), K::kFwdSimt);
  EXPECT_EQ(choose(c, 1.f), K::kFwdWgmma);
}

// Every kernel has its own name, and each pass only gets kernels of its kind.
TEST(RelationKLChooseKernel, NamesAreDistinctAndPassesMatch) {
  std::vector<std::string> names;
  for (int k = 0; k <= static_cast<int>(K::kSelfBwdSimt); ++k) {
    const std::string n = relation_kl_kernel_name(static_cast<K>(k));
    EXPECT_NE(n, "unknown");
    for (const std::string& seen : names) EXPECT_NE(n, seen);
    names.push_back(n);
  }
  for (RelationKLDeviceCaps caps : {kA100, kH100})
    for (int D : {64, 80, 96, 128})
      for (E dtype : {E::kBF16, E::kFP16, E::kFP32})
        for (KernelSwitches sw : {defaults(), no_wgmma(), self_split(), fwd_cfg(0, true)}) {
          const Case f{caps, P::kForward, D, D, dtype, sw, K::kFwdSimt};
          EXPECT_TRUE(relation_kl_kernel_is_forward(choose(f))) << describe(f);
          for (P pass : {P::kBackward, P::kSelfBackward}) {
            const Case b{caps, pass, D, D, dtype, sw, K::kFwdSimt};
            EXPECT_FALSE(relation_kl_kernel_is_forward(choose(b))) << describe(b);
            EXPECT_EQ(relation_kl_kernel_is_simt(choose(b)), dtype == E::kFP32) << describe(b);
          }
        }
}

TEST(RelationKLChooseKernel, SwitchesFromTheEnvironment) {
  const char* const names[] = {"LINEARARD_RKL_WGMMA", "LINEARARD_RKL_SELF_SPLIT", "LINEARARD_RKL_FWD_CFG",
                               "LINEARARD_RKL_FWD_PIPE64", "LINEARARD_RKL_CHUNK"};
  auto read = [] {
    const KernelSwitches s = KernelSwitches::from_env();
    return std::vector<int>{s.wgmma, s.self_split, s.fwd_cfg, s.fwd_pipe_d64, s.chunk};
  };
  const char* const set[] = {"0", "1", "2", "1", "3"};
  for (int i = 0; i < 5; ++i) setenv(names[i], set[i], 1);
  EXPECT_EQ(read(), (std::vector<int>{0, 1, 2, 1, 3}));
  for (const char* n : names) unsetenv(n);
  EXPECT_EQ(read(), (std::vector<int>{1, 0, 1, 0, 0}));  // the defaults
}

}  // namespace
}  // namespace linearard::ops
