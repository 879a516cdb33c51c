// TextTable: rows of cells printed as aligned columns, each as wide as its widest cell, two
// spaces apart, every line indented by `indent` (kubectl's plain tables). Not thread-safe.
#ifndef KVTIER_CLIENT_CTL_TEXT_TABLE_H_
#define KVTIER_CLIENT_CTL_TEXT_TABLE_H_

#include <string>
#include <utility>
#include <vector>

namespace kvtier {

class TextTable {
 public:
  explicit TextTable(int indent = 0) : indent_(indent) {}

  void AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

  // The rows, one a line, each ending in '\n'; no trailing spaces.
  std::string ToString() const;

 private:
  const int indent_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CTL_TEXT_TABLE_H_
