#include "eval/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

namespace linearard::eval {
namespace {

using nlohmann::json;

const char* kRoles[] = {"teacher", "scaled", "restored"};
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c"};  // matplotlib's tab10 blue, red, green

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string label(double v) {  // 4 significant digits, no exponent for the usual ranges
  char buf[32];
  if (v >= 1000) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string length_label(int64_t T) {
  return T >= 1024 && T % 1024 == 0 ? std::to_string(T / 1024) + "K" : std::to_string(T);
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string text(double x, double y, const std::string& s, const std::string& extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + (extra.empty() ? "" : " " + extra) + ">" +
         escape(s) + "</text>\n";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& style) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" " +
         style + "/>\n";
}

// Red (0) -> yellow (0.5) -> green (1): ColorBrewer RdYlGn end points.
std::string accuracy_color(double a) {
  const double lo[3] = {215, 48, 39}, mid[3] = {254, 224, 139}, hi[3] = {26, 152, 80};
  a = std::clamp(a, 0.0, 1.0);
  const double* from = a < 0.5 ? lo : mid;
  const double* to = a < 0.5 ? mid : hi;
  const double t = a < 0.5 ? a / 0.5 : (a - 0.5) / 0.5;
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(std::lround(from[0] + t * (to[0] - from[0]))),
                int(std::lround(from[1] + t * (to[1] - from[1]))), int(std::lround(from[2] + t * (to[2] - from[2]))));
  return buf;
}

// Tick values for a log axis over [lo, hi]: 1-2-5 steps per decade, thinned to at most ~8; when
// the range is too narrow for three of those, evenly spaced round values (step 1, 2 or 5 x 10^k).
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  for (int e = static_cast<int>(std::floor(std::log10(lo))); e <= static_cast<int>(std::ceil(std::log10(hi))); ++e)
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, e);
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push_back(v);
    }
  while (ticks.size() > 8) {
    std::vector<double> thinned;
    for (size_t i = 0; i < ticks.size(); i += 2) thinned.push_back(ticks[i]);
    ticks = thinned;
  }
  if (ticks.size() >= 3) return ticks;
  const double raw = (hi - lo) / 4, decade = std::pow(10.0, std::floor(std::log10(raw)));
  double step = decade;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * decade >= raw) {
      step = m * decade;
      break;
    }
  ticks.clear();
  for (double v = std::ceil(lo / step) * step; v <= hi * (1 + 1e-9); v += step) ticks.push_back(v);
  return ticks;
}

}  // namespace

std::string ppl_chart_svg(const json& report) {
  const json& models = report["models"];
  if (!models["teacher"].contains("ppl")) return "";
  std::vector<int64_t> contexts;
  for (const auto& r : models["teacher"]["ppl"]["results"]) contexts.push_back(r["context"]);
  std::sort(contexts.begin(), contexts.end());
  contexts.erase(std::unique(contexts.begin(), contexts.end()), contexts.end());
  if (contexts.empty()) return "";
  // series[i] = (context, ppl) points of model i
  std::vector<std::vector<std::pair<double, double>>> series(3);
  double ymin = INFINITY, ymax = 0;
  for (int i = 0; i < 3; ++i) {
    if (!models[kRoles[i]].contains("ppl")) continue;
    for (const auto& r : models[kRoles[i]]["ppl"]["results"]) {
      const double p = r["perplexity"].is_number() ? r["perplexity"].get<double>() : NAN;
      if (!std::isfinite(p) || p <= 0) continue;
      series[i].push_back({r["context"].get<double>(), p});
      ymin = std::min(ymin, p);
      ymax = std::max(ymax, p);
    }
    std::sort(series[i].begin(), series[i].end());
  }
  if (!(ymax > 0)) return "";
  if (ymax / ymin < 1.2) ymin /= 1.1, ymax *= 1.1;  // keep flat lines off the frame
  const double W = 720, H = 420, left = 70, right = 150, top = 40, bottom = 55;
  const double pw = W - left - right, ph = H - top - bottom;
  const double xlo = std::log2(double(contexts.front())), xhi = std::log2(double(contexts.back()));
  const double xspan = xhi > xlo ? xhi - xlo : 1.0;
  const double ylo = std::log10(ymin), yhi = std::log10(ymax), yspan = yhi > ylo ? yhi - ylo : 1.0;
  auto X = [&](double T) {
    return contexts.size() == 1 ? left + pw / 2 : left + (std::log2(T) - xlo) / xspan * pw;
  };
  auto Y = [&](double p) { return top + ph - (std::log10(p) - ylo) / yspan * ph; };

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
    << " " << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << text(left + pw / 2, 22, "Perplexity by context length", "text-anchor=\"middle\" font-size=\"15\"");
  s << "<rect x=\"" << num(left) << "\" y=\"" << num(top) << "\" width=\"" << num(pw) << "\" height=\"" << num(ph)
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (double v : log_ticks(ymin, ymax)) {
    s << line(left, Y(v), left + pw, Y(v), "stroke=\"#ddd\"");
    s << text(left - 6, Y(v) + 4, label(v), "text-anchor=\"end\"");
  }
  for (int64_t T : contexts) {
    s << line(X(T), top, X(T), top + ph, "stroke=\"#eee\"");
    s << text(X(T), top + ph + 16, length_label(T), "text-anchor=\"middle\"");
  }
  const int64_t native = report.value("native_context", int64_t{0});
  if (native >= contexts.front() && native <= contexts.back() && contexts.size() > 1) {
    s << line(X(native), top, X(native), top + ph, "stroke=\"#888\" stroke-dasharray=\"5,4\"");
    s << text(X(native) + 4, top + 14, "native " + length_label(native), "fill=\"#666\"");
  }
  s << text(left + pw / 2, H - 12, "context length (tokens, log scale)", "text-anchor=\"middle\"");
  s << text(18, top + ph / 2, "perplexity (log scale)",
            "text-anchor=\"middle\" transform=\"rotate(-90 18 " + num(top + ph / 2) + ")\"");
  for (int i = 0; i < 3; ++i) {
    if (series[i].empty()) continue;
    s << "<polyline fill=\"none\" stroke=\"" << kColors[i] << "\" stroke-width=\"2\" points=\"";
    for (const auto& [T, p] : series[i]) s << num(X(T)) << "," << num(Y(p)) << " ";
    s << "\"/>\n";
    for (const auto& [T, p] : series[i])
      s << "<circle cx=\"" << num(X(T)) << "\" cy=\"" << num(Y(p)) << "\" r=\"3.5\" fill=\"" << kColors[i]
        << "\"><title>" << kRoles[i] << " " << length_label(static_cast<int64_t>(T)) << ": " << label(p)
        << "</title></circle>\n";
    const double ly = top + 20 + 22 * i;
    s << line(left + pw + 16, ly, left + pw + 40, ly, std::string("stroke=\"") + kColors[i] + "\" stroke-width=\"2\"");
    s << text(left + pw + 46, ly + 4, kRoles[i]);
  }
  s << "</svg>\n";
  return s.str();
}

namespace {

// A 0..100 % line chart against length (log scale), one line per model: the top-1 and RULER charts.
std::string percent_chart(std::vector<int64_t> contexts, std::vector<std::vector<std::pair<double, double>>> series,
                          const std::string& title, const std::string& xlabel, const std::string& ylabel) {
  std::sort(contexts.begin(), contexts.end());
  contexts.erase(std::unique(contexts.begin(), contexts.end()), contexts.end());
  for (auto& points : series) std::sort(points.begin(), points.end());
  const double W = 720, H = 420, left = 70, right = 150, top = 40, bottom = 55;
  const double pw = W - left - right, ph = H - top - bottom;
  const double xlo = std::log2(double(contexts.front())), xhi = std::log2(double(contexts.back()));
  const double xspan = xhi > xlo ? xhi - xlo : 1.0;
  auto X = [&](double T) {
    return contexts.size() == 1 ? left + pw / 2 : left + (std::log2(T) - xlo) / xspan * pw;
  };
  auto Y = [&](double a) { return top + ph - a / 100.0 * ph; };  // 0..100 %

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
    << " " << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << text(left + pw / 2, 22, title,
            "text-anchor=\"middle\" font-size=\"15\"");
  s << "<rect x=\"" << num(left) << "\" y=\"" << num(top) << "\" width=\"" << num(pw) << "\" height=\"" << num(ph)
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int v = 0; v <= 100; v += 20) {
    s << line(left, Y(v), left + pw, Y(v), "stroke=\"#ddd\"");
    s << text(left - 6, Y(v) + 4, std::to_string(v) + "%", "text-anchor=\"end\"");
  }
  for (int64_t T : contexts) {
    s << line(X(T), top, X(T), top + ph, "stroke=\"#eee\"");
    s << text(X(T), top + ph + 16, length_label(T), "text-anchor=\"middle\"");
  }
  s << text(left + pw / 2, H - 12, xlabel, "text-anchor=\"middle\"");
  s << text(18, top + ph / 2, ylabel,
            "text-anchor=\"middle\" transform=\"rotate(-90 18 " + num(top + ph / 2) + ")\"");
  for (int i = 0; i < 3; ++i) {
    if (series[i].empty()) continue;
    s << "<polyline fill=\"none\" stroke=\"" << kColors[i] << "\" stroke-width=\"2\" points=\"";
    for (const auto& [T, a] : series[i]) s << num(X(T)) << "," << num(Y(a)) << " ";
    s << "\"/>\n";
    for (const auto& [T, a] : series[i])
      s << "<circle cx=\"" << num(X(T)) << "\" cy=\"" << num(Y(a)) << "\" r=\"3.5\" fill=\"" << kColors[i]
        << "\"><title>" << kRoles[i] << " " << length_label(static_cast<int64_t>(T)) << ": " << label(a)
        << "%</title></circle>\n";
    const double ly = top + 20 + 22 * i;
    s << line(left + pw + 16, ly, left + pw + 40, ly, std::string("stroke=\"") + kColors[i] + "\" stroke-width=\"2\"");
    s << text(left + pw + 46, ly + 4, kRoles[i]);
  }
  s << "</svg>\n";
  return s.str();
}


}  // namespace

std::string top1_chart_svg(const json& report) {
  // series[i] = (context, agreement in %) points of model i, from the report's fidelity rows.
  std::vector<std::vector<std::pair<double, double>>> series(3);
  std::vector<int64_t> contexts;
  for (const auto& row : report.value("fidelity", json::array())) {
    if (row["kind"] != "top1_agreement") continue;
    contexts.push_back(row["context"]);
    for (int i = 0; i < 3; ++i)
      if (row[kRoles[i]].is_number()) series[i].push_back({row["context"].get<double>(), 100 * row[kRoles[i]].get<double>()});
  }
  if (contexts.empty()) return "";
  return percent_chart(contexts, series, "Top-1 agreement with the teacher by context length",
                       "context length (tokens, log scale)", "next tokens equal to the teacher's top-1");
}

std::string ruler_chart_svg(const json& report) {
  // series[i] = (length, mean RULER score in %) of model i, from the "ruler mean@L" rows.
  std::vector<std::vector<std::pair<double, double>>> series(3);
  std::vector<int64_t> lengths;
  for (const auto& row : report.value("long_context", json::array())) {
    if (row["kind"] != "ruler" || row["task"] != "mean") continue;
    lengths.push_back(row["length"]);
    for (int i = 0; i < 3; ++i)
      if (row[kRoles[i]].is_number()) series[i].push_back({row["length"].get<double>(), 100 * row[kRoles[i]].get<double>()});
  }
  if (lengths.empty()) return "";
  return percent_chart(lengths, series, "RULER by length (mean over tasks)", "prompt length (tokens, log scale)",
                       "answers found (string match)");
}

std::string passkey_chart_svg(const json& report) {
  const json& models = report["models"];
  std::vector<int> present;
  for (int i = 0; i < 3; ++i)
    if (models[kRoles[i]].contains("passkey")) present.push_back(i);
  if (present.empty()) return "";
  const json& first = models[kRoles[present[0]]]["passkey"];
  const size_t nl = first["lengths"].size(), nd = first["depths"].size();
  const double cw = 46, ch = 24, label_w = 56, gap = 30, top = 58, title_h = 22;
  const double panel_w = label_w + cw * nl;
  const double W = 20 + present.size() * panel_w + (present.size() - 1) * gap + 20;
  const double H = top + title_h + ch * nd + 50;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(W) << "\" height=\"" << num(H)
    << "\" viewBox=\"0 0 " << num(W) << " " << num(H) << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << text(W / 2, 24, "Passkey retrieval accuracy (rows: needle depth, columns: prompt length)",
            "text-anchor=\"middle\" font-size=\"14\"");
  for (size_t k = 0; k < present.size(); ++k) {
    const json& pk = models[kRoles[present[k]]]["passkey"];
    const double x0 = 20 + k * (panel_w + gap);
    s << text(x0 + label_w + cw * nl / 2, top, kRoles[present[k]], "text-anchor=\"middle\" font-size=\"13\"");
    const auto& lengths = pk["lengths"];
    const auto& depths = pk["depths"];
    for (size_t l = 0; l < lengths.size(); ++l)
      s << text(x0 + label_w + cw * (l + 0.5), top + title_h - 6, length_label(lengths[l].get<int64_t>()),
                "text-anchor=\"middle\"");
    for (size_t d = 0; d < depths.size(); ++d) {
      const double y = top + title_h + ch * d;
      s << text(x0 + label_w - 6, y + ch / 2 + 4, num(100.0 * depths[d].get<double>()) + "%",
                "text-anchor=\"end\"");
      for (size_t l = 0; l < lengths.size(); ++l) {
        const double a = pk["accuracy"][l][d];
        const double x = x0 + label_w + cw * l;
        s << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(cw - 1) << "\" height=\""
          << num(ch - 1) << "\" fill=\"" << accuracy_color(a) << "\"><title>" << kRoles[present[k]] << " length "
          << lengths[l].get<int64_t>() << " depth " << depths[d].get<double>() << ": " << a << "</title></rect>\n";
        s << text(x + cw / 2, y + ch / 2 + 4, std::to_string(static_cast<int>(std::lround(100 * a))),
                  "text-anchor=\"middle\"");
      }
    }
  }
  s << text(W / 2, H - 16, "cell = % of trials whose greedy answer equals the key", "text-anchor=\"middle\" fill=\"#555\"");
  s << "</svg>\n";
  return s.str();
}

}  // namespace linearard::eval
