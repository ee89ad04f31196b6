// Small helpers shared by kubesim's files: times as Kubernetes writes them, random names and
// uids, JSON access. Thread-safety: pure functions except the random ones, which use a
// thread-local generator.
#ifndef KILN_TESTS_KUBESIM_UTIL_H_
#define KILN_TESTS_KUBESIM_UTIL_H_

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::kubesim {

using nlohmann::json;
using SysTime = std::chrono::system_clock::time_point;

// "2026-04-26T18:35:42Z" (metav1.Time, second precision).
std::string Rfc3339(SysTime t);
// "2026-04-26T18:35:42.123456789Z" (RFC3339Nano, used by log timestamps).
std::string Rfc3339Nano(SysTime t);
std::optional<SysTime> ParseRfc3339(std::string_view text);

std::string NewUid();
// Five characters from the alphabet of apiserver's names.SimpleNameGenerator.
std::string RandomSuffix();
std::string RandomHex(size_t n);

// obj[a][b]... as a string, or `fallback` when any step is missing or not a string.
std::string Str(const json& obj, std::initializer_list<std::string_view> path,
                std::string fallback = "");
// A pointer to obj[a][b]..., or nullptr.
const json* Find(const json& obj, std::initializer_list<std::string_view> path);
int64_t Int(const json& obj, std::initializer_list<std::string_view> path, int64_t fallback);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_UTIL_H_
