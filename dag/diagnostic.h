// Diagnostics: what validation says about a manifest, compiler style.
//   train.yaml:14:9: spec.templates[0].dag.tasks[2].depends: unknown task "trian" (did you mean "train"?)
// Thread-safety: a Diagnostics is owned by one thread at a time.
#ifndef KILN_DAG_DIAGNOSTIC_H_
#define KILN_DAG_DIAGNOSTIC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::dag {

// A position in a source file, 1-based; line 0 means unknown.
struct Location {
  uint32_t line = 0;
  uint32_t column = 0;
};

enum class Severity { kError, kWarning, kNote };

struct Diagnostic {
  Severity severity = Severity::kError;
  std::string file;
  Location loc;
  std::string path;     // field path, e.g. spec.templates[0].dag.tasks[2].depends; may be empty
  std::string message;

  // "file:line:col: path: message"; "warning: " / "note: " precede the message when not an error.
  std::string ToString() const;
};

class Diagnostics {
 public:
  void Add(Severity severity, std::string_view file, Location loc, std::string path,
           std::string message);
  void Error(std::string_view file, Location loc, std::string path, std::string message) {
    Add(Severity::kError, file, loc, std::move(path), std::move(message));
  }
  void Warning(std::string_view file, Location loc, std::string path, std::string message) {
    Add(Severity::kWarning, file, loc, std::move(path), std::move(message));
  }
  void Note(std::string_view file, Location loc, std::string path, std::string message) {
    Add(Severity::kNote, file, loc, std::move(path), std::move(message));
  }

  const std::vector<Diagnostic>& items() const { return items_; }
  size_t error_count() const { return errors_; }
  size_t warning_count() const { return warnings_; }
  bool has_errors() const { return errors_ > 0; }

  // Sorts by file, line, column (stable), so output reads top to bottom like a compiler's.
  void Sort();
  void Append(const Diagnostics& other);

  // Past this many diagnostics further ones are counted but not kept (hostile input can produce
  // millions); the last kept item says how many were dropped.
  static constexpr size_t kMaxKept = 1000;

 private:
  std::vector<Diagnostic> items_;
  size_t errors_ = 0;
  size_t warnings_ = 0;
  size_t dropped_ = 0;
};

}  // namespace kiln::dag

#endif  // KILN_DAG_DIAGNOSTIC_H_
