#pragma once
// Training logs as CSV or JSON lines (chosen by the file name: .jsonl or
// .csv), one row per record, every row with the same fields; and an SVG plot
// of the loss curves drawn from such rows (no plotting library needed).
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace heed::examples {

class TrainLog {
 public:
  // fields: the column names, in order. Appends to an existing file when
  // `append` (a resumed run), else starts a new one. On a rank other than 0
  // of a run of several (examples/common/ranks.h) it writes nothing.
  TrainLog(const std::string& path, std::vector<std::string> fields, bool append = false);
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;
  // Missing fields are written empty (CSV) or left out (JSON).
  void write(const std::map<std::string, double>& row);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> fields_;
  bool json_;
  std::FILE* file_ = nullptr;
};

struct Curve {
  std::string name;
  std::vector<double> x, y;
};
// A self-contained SVG line chart of the curves (e.g. train and validation loss against step).
void write_svg_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Curve>& curves);

}  // namespace heed::examples
