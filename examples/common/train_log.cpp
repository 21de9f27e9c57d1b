#include "examples/common/train_log.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/core.h>

#include "examples/common/ranks.h"
#include "tensor/error.h"

namespace heed::examples {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string number(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string("null"); }
std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}
}  // namespace

TrainLog::TrainLog(const std::string& path, std::vector<std::string> fields, bool append)
    : path_(path), fields_(std::move(fields)), json_(ends_with(path, ".jsonl") || ends_with(path, ".json")) {
  HEED_CHECK(json_ || ends_with(path, ".csv"), "training log {}: the name must end in .csv or .jsonl", path);
  if (!writes()) return;  // rank 0 writes the log
  const bool had_file = append && std::ifstream(path).good();
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  HEED_CHECK(file_ != nullptr, "training log {}: cannot open it for writing", path);
  if (!json_ && !had_file) {
    for (size_t i = 0; i < fields_.size(); ++i) fmt::print(file_, "{}{}", i ? "," : "", fields_[i]);
    fmt::print(file_, "\n");
    std::fflush(file_);
  }
}

TrainLog::~TrainLog() {
  if (file_) std::fclose(file_);
}

void TrainLog::write(const std::map<std::string, double>& row) {
  if (!file_) return;  // not rank 0
  std::string line;
  if (json_) {
    line = "{";
    bool first = true;
    for (const auto& f : fields_) {
      auto it = row.find(f);
      if (it == row.end()) continue;
      line += fmt::format("{}\"{}\": {}", first ? "" : ", ", f, number(it->second));
      first = false;
    }
    line += "}";
  } else {
    for (size_t i = 0; i < fields_.size(); ++i) {
      auto it = row.find(fields_[i]);
      line += (i ? "," : "") + (it == row.end() ? std::string() : number(it->second));
    }
  }
  fmt::print(file_, "{}\n", line);
  std::fflush(file_);
}

void write_svg_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Curve>& curves) {
  if (!writes()) return;
  const double W = 720, H = 420, left = 70, right = 20, top = 40, bottom = 55;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& c : curves)
    for (size_t i = 0; i < c.x.size() && i < c.y.size(); ++i)
      if (std::isfinite(c.y[i])) {
        x0 = std::min(x0, c.x[i]), x1 = std::max(x1, c.x[i]);
        y0 = std::min(y0, c.y[i]), y1 = std::max(y1, c.y[i]);
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom); };
  static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{3}</text>\n",
      W, H, W / 2, xml_escape(title));
  for (int i = 0; i <= 5; ++i) {
    const double y = y0 + (y1 - y0) * i / 5, x = x0 + (x1 - x0) * i / 5;
    svg += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:.3g}</text>\n",
                       left, W - right, py(y), left - 6, py(y) + 4, y);
    svg += fmt::format("<text x=\"{0:.1f}\" y=\"{1}\" text-anchor=\"middle\">{2:.4g}</text>\n", px(x), H - bottom + 18,
                       x);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (left + W - right) / 2, H - 12,
                     xml_escape(x_label));
  svg += fmt::format("<text x=\"16\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {0})\">{1}</text>\n",
                     (top + H - bottom) / 2, xml_escape(y_label));
  for (size_t k = 0; k < curves.size(); ++k) {
    const auto& c = curves[k];
    const char* colour = colours[k % 5];
    std::string points;
    for (size_t i = 0; i < c.x.size() && i < c.y.size(); ++i)
      if (std::isfinite(c.y[i])) points += fmt::format("{:.1f},{:.1f} ", px(c.x[i]), py(c.y[i]));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", colour, points);
    svg += fmt::format("<rect x=\"{0}\" y=\"{1}\" width=\"14\" height=\"3\" fill=\"{2}\"/><text x=\"{3}\" y=\"{4}\">{5}</text>\n",
                       W - right - 150, top + 8 + 16 * k, colour, W - right - 130, top + 13 + 16 * k,
                       xml_escape(c.name));
  }
  svg += "</svg>\n";
  std::ofstream out(path);
  HEED_CHECK(out.good(), "plot {}: cannot open it for writing", path);
  out << svg;
}

}  // namespace heed::examples
