#include "dag/lint.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "dag/validate.h"

namespace kiln::dag {

namespace fs = std::filesystem;

namespace {

bool IsYamlFile(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

}  // namespace

LintResult Lint(const std::vector<std::string>& paths, const LintOptions& options) {
  LintResult result;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && IsYamlFile(it->path())) found.push_back(it->path().string());
      }
      if (ec) {
        result.diags.Error(path, {}, "", "cannot list directory: " + ec.message());
      }
      std::sort(found.begin(), found.end());
      if (found.empty() && !ec) {
        result.diags.Warning(path, {}, "", "no .yaml or .yml files in this directory");
      }
      result.files.insert(result.files.end(), found.begin(), found.end());
    } else {
      result.files.push_back(path);
    }
  }
  for (const std::string& file : result.files) {
    std::vector<Manifest> ms = LoadManifestFile(file, options.parse, result.diags);
    for (Manifest& m : ms) result.manifests.push_back(std::move(m));
  }
  TemplateLibrary library;
  for (const Manifest& m : result.manifests) library.Add(m);
  for (const Manifest& m : result.manifests) Validate(m, library, result.diags);
  result.diags.Sort();
  return result;
}

}  // namespace kiln::dag
