#include "dag/diagnostic.h"

#include <algorithm>

namespace kiln::dag {

std::string Diagnostic::ToString() const {
  std::string out = file;
  if (loc.line > 0) {
    out += ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
  }
  out += ": ";
  if (!path.empty()) out += path + ": ";
  if (severity == Severity::kWarning) out += "warning: ";
  if (severity == Severity::kNote) out += "note: ";
  out += message;
  return out;
}

void Diagnostics::Add(Severity severity, std::string_view file, Location loc, std::string path,
                      std::string message) {
  if (severity == Severity::kError) ++errors_;
  if (severity == Severity::kWarning) ++warnings_;
  if (items_.size() >= kMaxKept) {
    ++dropped_;
    items_.back().message = std::to_string(dropped_) + " more problems not shown";
    items_.back().path.clear();
    return;
  }
  items_.push_back(Diagnostic{severity, std::string(file), loc, std::move(path), std::move(message)});
}

void Diagnostics::Sort() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.file != b.file) return a.file < b.file;
    if (a.loc.line != b.loc.line) return a.loc.line < b.loc.line;
    return a.loc.column < b.loc.column;
  });
}

void Diagnostics::Append(const Diagnostics& other) {
  for (const Diagnostic& d : other.items_) {
    Add(d.severity, d.file, d.loc, d.path, d.message);
  }
}

}  // namespace kiln::dag
