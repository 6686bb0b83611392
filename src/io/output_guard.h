// Guards on what a command writes, checked before it writes anything (issue 9, "outputs"):
//   - never into an input: the output may not be, lie inside or contain an input model,
//     checkpoint or tokenizer directory (paths compared after resolving symlinks);
//   - never over earlier results: a non-empty output directory is refused unless --overwrite
//     (a training run resuming into its own --out excepted, see prepare_training_out).
// Each refusal is an OptionError of the output's option ("out": the CLI prints "--out PATH: ..."),
// torch-free: the training run API (train/run.h) and the CLI's commands call it.
#pragma once
#include <string>
#include <vector>

namespace linearard::io {

// An input the output must keep clear of: how messages name it ("--model") and its path (a
// directory or a file).
struct GuardedInput {
  std::string label, path;
};

// What a command is about to write.
struct OutputTarget {
  std::string option = "out";  // the output's option (OptionError)
  std::string path;
  bool overwrite = false;      // --overwrite
  std::vector<GuardedInput> inputs;
};

// Refuses an output that is an input, lies inside one or contains one. Inputs that do not exist
// are skipped (the command reports them itself, with a better message).
void refuse_input_overlap(const OutputTarget& t);

// Output folders of tokenize and report: refuse_input_overlap, then an existing non-directory, then
// a non-empty directory without --overwrite. With --overwrite the command writes into the folder,
// replacing its own files of the same names; nothing else there is touched.
void check_output_dir(const OutputTarget& t);

// A training run's --out (distill, cpt, pretrain), called by the main process before any worker
// starts (train/run.cpp). Without --resume the folder must be new or empty, or --overwrite given: then the earlier
// run's files (options.json, metrics.jsonl, checkpoints/, final/) are deleted first so that
// `--resume latest` can never pick up a checkpoint of the old run; other files are left alone.
// With --resume (latest, auto or a checkpoint directory) a non-empty folder is accepted when it
// holds an earlier run (options.json): resuming into its own --out. --overwrite with --resume is
// refused (one continues a run, the other starts a fresh one).
void prepare_training_out(const OutputTarget& t, const std::string& resume);

// --overwrite of tokenize and sample: deletes the files of `dir` whose names match `pattern` (the
// command's own outputs: shard-NNNNN.bin, manifest.json, ...) so that the folder never holds a mix
// of an earlier and a new run; nothing else is touched.
void remove_earlier_outputs(const std::string& dir, const std::string& pattern);

// A single output file (eval --json): refuse_input_overlap, a directory at that path, and an
// existing file that is not an earlier `linearard eval` result (a JSON object with "model" and
// "plan") unless --overwrite. The file itself is written atomically by the caller.
void check_output_file(const OutputTarget& t);

}  // namespace linearard::io
