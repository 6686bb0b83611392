#include "common/option_layers.h"

#include "common/error.h"
#include "common/option_error.h"

namespace linearard {
namespace {

// The options of `app` and of its option groups (CLI11 keeps a group as a nameless subcommand,
// whose options App::get_options leaves out: CLI11's README, "Option groups"), without the help
// flags.
template <class AppT, class OptionT>
void collect_options(AppT& app, std::vector<OptionT*>& out) {
  for (OptionT* opt : app.get_options())
    if (opt != app.get_help_ptr() && opt != app.get_help_all_ptr()) out.push_back(opt);
  for (auto* sub : app.get_subcommands([](const CLI::App* s) { return s->get_name().empty(); }))
    collect_options(*sub, out);
}

// The option named `name` (its first long flag), or null.
CLI::Option* option_named(CLI::App& app, const std::string& name) {
  std::vector<CLI::Option*> all;
  collect_options(app, all);
  for (CLI::Option* opt : all)
    if (opt->get_single_name() == name) return opt;
  return nullptr;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

// What the option takes, for the error of a value CLI11 could not convert.
std::string expected_value(const CLI::Option& opt) {
  if (opt.get_items_expected_max() == 0) return "true or false";
  const std::string type = opt.get_type_name();
  if (type.find("INT") != std::string::npos) return "an integer";
  if (type.find("FLOAT") != std::string::npos) return "a number";
  if (opt.get_items_expected_max() == 1) return "one value";
  return "a value CLI11 reads as " + type;
}

}  // namespace

FlatOptions flatten_options(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object of option names to values");
  auto text = [](const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : v.is_boolean() ? (v.get<bool>() ? "true" : "false") : v.dump();
  };
  FlatOptions items;
  for (const auto& [key, value] : j.items()) {
    std::vector<std::string> inputs;
    if (value.is_array()) {
      for (const auto& v : value) inputs.push_back(text(v));
    } else {
      inputs.push_back(text(value));  // an object (e.g. rope-scaling) stays JSON text
    }
    items.emplace_back(key, std::move(inputs));
  }
  return items;
}

void set_given_options(CLI::App& app, const nlohmann::json& given) {
  for (const auto& [key, inputs] : flatten_options(given, "options")) {
    CLI::Option* opt = option_named(app, key);
    if (opt == nullptr) fail_option(key, "not an option of " + app.get_name());
    try {
      opt->add_result(inputs);
      opt->run_callback();
    } catch (const CLI::Error&) {
      // CLI11's messages spell the flag ("--steps"); the caller spells the option its own way.
      fail_option(key, "expected " + expected_value(*opt) + ", got '" + joined(inputs) + "'");
    }
  }
}

void apply_option_layer(CLI::App& app, const FlatOptions& items, const std::string& where) {
  for (const auto& [key, inputs] : items) {
    CLI::Option* opt = nullptr;
    try {
      opt = app.get_option("--" + key);
    } catch (const CLI::OptionNotFound&) {
      fail(where, "unknown option '" + key + "'");
    }
    if (key == "config" || key == "recipe") fail(where, "cannot name another config file or recipe");
    if (opt->count() > 0) continue;  // a higher layer (the given values, then the config file) wins
    opt->add_result(inputs);
    opt->run_callback();
  }
}

nlohmann::json given_options(const CLI::App& app) {
  std::vector<const CLI::Option*> all;
  collect_options(app, all);
  nlohmann::json given = nlohmann::json::object();
  for (const CLI::Option* opt : all)
    if (opt->count() > 0) given[opt->get_single_name()] = opt->results();
  return given;
}

nlohmann::json describe_options(const CLI::App& app) {
  std::vector<const CLI::Option*> all;
  collect_options(app, all);
  nlohmann::json table = nlohmann::json::array();
  for (const CLI::Option* opt : all)
    table.push_back({{"name", opt->get_single_name()},
                     {"help", opt->get_description()},
                     {"default", opt->get_default_str()},
                     {"flag", opt->get_items_expected_max() == 0},
                     {"several", opt->get_items_expected_max() > 1}});
  return table;
}

}  // namespace linearard
