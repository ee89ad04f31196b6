// Request routing by method and path pattern. Thread-safety: build it before serving; Dispatch
// is then const and safe from the server thread.
#ifndef KILN_HTTP_ROUTER_H_
#define KILN_HTTP_ROUTER_H_

#include <string>
#include <vector>

#include "http/server.h"

namespace kiln::http {

class Router {
 public:
  // Adds a route. `pattern` is a path of '/'-separated segments: a literal, "{name}" (one
  // segment, stored in Request::params["name"]) or, last, "{name...}" (the rest of the path,
  // possibly empty). `method` "*" matches any method. Routes are tried in the order added.
  void Add(std::string method, std::string pattern, Handler handler);

  // Returns a handler that dispatches to the first matching route, else 404 (no route for the
  // path) or 405 (the path matches with another method) from `fallback`, when given.
  Handler Build(Handler fallback = nullptr) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

// Splits "/a/b/" into {"a", "b"}; empty segments are dropped.
std::vector<std::string> SplitPath(std::string_view path);

}  // namespace kiln::http

#endif  // KILN_HTTP_ROUTER_H_
