#include "http/router.h"

#include <memory>

namespace kiln::http {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > i) out.emplace_back(path.substr(i, slash - i));
    i = slash + 1;
  }
  return out;
}

void Router::Add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back({std::move(method), SplitPath(pattern), std::move(handler)});
}

namespace {

bool Match(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
           std::map<std::string, std::string>& params) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    const std::string& seg = pattern[i];
    bool capture = seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
    if (capture && seg.ends_with("...}")) {
      std::string rest;
      for (size_t j = i; j < path.size(); ++j) rest += (j > i ? "/" : "") + path[j];
      params[seg.substr(1, seg.size() - 5)] = rest;
      return true;
    }
    if (i >= path.size()) return false;
    if (capture) {
      params[seg.substr(1, seg.size() - 2)] = path[i];
    } else if (seg != path[i]) {
      return false;
    }
  }
  return pattern.size() == path.size();
}

}  // namespace

Handler Router::Build(Handler fallback) const {
  auto routes = std::make_shared<const std::vector<Route>>(routes_);
  return [routes, fallback = std::move(fallback)](Request request, Responder responder) {
    std::vector<std::string> path = SplitPath(request.path);
    bool path_matched = false;
    for (const Route& route : *routes) {
      std::map<std::string, std::string> params;
      if (!Match(route.segments, path, params)) continue;
      path_matched = true;
      if (route.method != "*" && route.method != request.method) continue;
      request.params = std::move(params);
      return route.handler(std::move(request), std::move(responder));
    }
    if (fallback) return fallback(std::move(request), std::move(responder));
    responder.Send(path_matched ? Response::Text(405, "method not allowed\n")
                                : Response::Text(404, "404 page not found\n"));
  };
}

}  // namespace kiln::http
