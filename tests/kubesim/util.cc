#include "tests/kubesim/util.h"

#include <ctime>
#include <random>

namespace kiln::kubesim {
namespace {
std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}
}  // namespace

std::string Rfc3339(SysTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Rfc3339Nano(SysTime t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%09lldZ", static_cast<long long>(ns % 1000000000));
  return std::string(buf) + frac;
}

std::optional<SysTime> ParseRfc3339(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string RandomHex(size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(n, '0');
  for (char& c : out) c = kHex[Rng()() % 16];
  return out;
}

std::string NewUid() {
  std::string h = RandomHex(32);
  h[12] = '4';
  h[16] = "89ab"[Rng()() % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::string RandomSuffix() {
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string out(5, 'b');
  for (char& c : out) c = kAlphabet[Rng()() % (sizeof kAlphabet - 1)];
  return out;
}

const json* Find(const json& obj, std::initializer_list<std::string_view> path) {
  const json* at = &obj;
  for (std::string_view key : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

std::string Str(const json& obj, std::initializer_list<std::string_view> path, std::string fallback) {
  const json* v = Find(obj, path);
  return v && v->is_string() ? v->get<std::string>() : fallback;
}

int64_t Int(const json& obj, std::initializer_list<std::string_view> path, int64_t fallback) {
  const json* v = Find(obj, path);
  return v && v->is_number_integer() ? v->get<int64_t>() : fallback;
}

}  // namespace kiln::kubesim
