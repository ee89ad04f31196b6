#include "cli/data_dir.h"

#include <openssl/sha.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "base/strings.h"

namespace kiln::cli {

namespace fs = std::filesystem;

std::string DefaultDataDir() {
  if (const char* d = std::getenv("KILN_DATA_DIR"); d && *d) return d;
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/kiln";
  return ".kiln";
}

std::string ResolveDataDir(const std::string& flag) {
  return flag.empty() ? DefaultDataDir() : flag;
}

std::string DatabasePath(const std::string& data_dir) { return data_dir + "/kiln.db"; }

std::string WorkflowWorkDir(const std::string& data_dir, const std::string& uid) {
  return data_dir + "/workflows/" + uid;
}

std::string StepLogPath(const std::string& data_dir, const std::string& uid,
                        const std::string& node_id) {
  // Must match LocalStepRunner::StepDir: the step directory is named by the first 8 bytes of the
  // SHA-256 of the node id, in hex.
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(node_id.data()), node_id.size(), digest);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < 8; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return WorkflowWorkDir(data_dir, uid) + "/steps/" + hex + "/log";
}

Result<std::unique_ptr<store::SqliteStore>> OpenRecordedStore(const std::string& data_dir) {
  std::error_code ec;
  fs::file_status dir = fs::status(data_dir, ec);
  if (!fs::exists(dir)) {
    return MakeError(Code::kNotFound, "data directory " + data_dir +
                                          " does not exist: no workflow has run with it; pass "
                                          "the --data-dir that `kiln run` used");
  }
  if (!fs::is_directory(dir)) {
    return MakeError(Code::kInvalidArgument,
                     "data directory " + data_dir + " is not a directory; pass another --data-dir");
  }
  const std::string db = DatabasePath(data_dir);
  if (!fs::exists(fs::symlink_status(db, ec))) {
    return MakeError(Code::kNotFound, "no database in data directory " + data_dir + " (" + db +
                                          " does not exist): no workflow has run with it; "
                                          "pass the --data-dir that `kiln run` used");
  }
  store::SqliteOptions options;
  options.create_if_missing = false;
  return store::SqliteStore::Open(db, options);
}

Result<store::WorkflowRecord> FindRecordedWorkflow(store::Store& store, const std::string& data_dir,
                                                   const std::string& name_or_uid,
                                                   const std::string& namespace_) {
  auto by_uid = store.GetWorkflow(name_or_uid);
  if (!by_uid) return std::unexpected(by_uid.error());
  if (*by_uid && (namespace_.empty() || (*by_uid)->namespace_ == namespace_)) return **by_uid;

  std::vector<store::WorkflowRecord> named;
  if (!namespace_.empty()) {
    auto found = store.FindWorkflow(namespace_, name_or_uid);
    if (!found) return std::unexpected(found.error());
    if (*found) named.push_back(**found);
  } else {
    // Names are unique per namespace only; look in every one.
    store::WorkflowFilter filter;
    filter.limit = 500;
    do {
      auto page = store.ListWorkflows(filter);
      if (!page) return std::unexpected(page.error());
      for (store::WorkflowRecord& w : page->workflows) {
        if (w.name == name_or_uid) named.push_back(std::move(w));
      }
      filter.continue_token = page->continue_token;
    } while (!filter.continue_token.empty());
  }
  if (named.size() == 1) return named.front();
  if (named.empty()) {
    std::string in_ns = namespace_.empty() ? "" : " in namespace " + namespace_;
    return MakeError(Code::kNotFound, "workflow " + Quote(name_or_uid) + " not found" + in_ns +
                                          " in " + DatabasePath(data_dir) +
                                          "; `kiln list --data-dir " + data_dir +
                                          "` shows the recorded ones");
  }
  std::string namespaces;
  for (const store::WorkflowRecord& w : named) {
    namespaces += (namespaces.empty() ? "" : ", ") + w.namespace_;
  }
  return MakeError(Code::kInvalidArgument, "workflow name " + Quote(name_or_uid) +
                                               " is used in several namespaces (" + namespaces +
                                               "); pass -n NAMESPACE or the uid");
}

std::string FormatTime(int64_t ms) {
  if (ms == 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z", &tm);
  return buf;
}

std::string FormatTimeUtc(int64_t ms) {
  if (ms == 0) return "";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];  // room for any int the compiler cannot bound
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string FormatDuration(int64_t started_ms, int64_t finished_ms) {
  if (started_ms == 0 || finished_ms == 0) return "-";
  int64_t ms = finished_ms > started_ms ? finished_ms - started_ms : 0;
  char buf[32];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms / 1000 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms / 60'000 % 60));
  }
  return buf;
}

}  // namespace kiln::cli
