// Option values as JSON on a CLI11 option table. Each command's options are declared once, as CLI11
// options bound to the run API's option struct (train/train_flags.h, export/export_flags.h,
// eval/eval_flags.h); the command line and the library callers (tests, the Python binding) fill
// that one table. An option's name is its first long flag without the dashes ("lora-rank"), as in
// a --config file and in OptionError (common/option_error.h). CLI11 converts every value, so a
// value means the same whether it came from the command line, a config file, a recipe or Python.
// Layers, highest first: the given values (the command line's, or a caller's JSON), then the
// lower layers applied in turn (--config, --recipe); each option takes its value from the highest
// layer that names it, and keeps its default when none does.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace linearard {

// Option name -> the strings CLI11 parses for it, in order.
using FlatOptions = std::vector<std::pair<std::string, std::vector<std::string>>>;

// A JSON object of option values as the strings CLI11 parses: a string as is, a bool as
// true/false, a number or an object (e.g. rope-scaling) as its JSON text, an array as one string per
// element. `where` names the source in the error for a non-object.
FlatOptions flatten_options(const nlohmann::json& j, const std::string& where);

// The given layer: sets each value of `given` (a JSON object as flatten_options reads it) on the
// option of that name. Throws an OptionError naming the option for a name that is not one of
// `app`'s options (aliases such as "no-shuffle" are not names) and for a value CLI11 cannot convert.
void set_given_options(CLI::App& app, const nlohmann::json& given);

// A lower layer (a config file, a recipe): gives each option of `items` that is not set yet its
// value. Errors name `where`: "<where>: unknown option 'x'", and a layer may not name "config"
// or "recipe". A value CLI11 cannot convert throws CLI11's own error (a CLI::ParseError).
void apply_option_layer(CLI::App& app, const FlatOptions& items, const std::string& where);

// The options set on `app` (by its command line or set_given_options) as the JSON object that
// set_given_options reads back: {name: [the parsed strings]}.
nlohmann::json given_options(const CLI::App& app);

// The table itself, for help texts (the Python docstrings): one object per option, in declaration
// order: name, help, default (CLI11's default text, "" when none is shown), flag (takes no value),
// several (takes more than one value, e.g. data).
nlohmann::json describe_options(const CLI::App& app);

}  // namespace linearard
