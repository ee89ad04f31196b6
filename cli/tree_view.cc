#include "cli/tree_view.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

namespace kiln::cli {

namespace {

using scheduler::NodeState;
using scheduler::NodeType;
using scheduler::Phase;
using scheduler::Time;

struct Glyphs {
  std::string_view tee;       // a child with siblings after it
  std::string_view last;      // the last child
  std::string_view bar;       // below a child with siblings after it
  std::string_view space;     // below the last child
  std::string_view ellipsis;  // where text was cut
};
constexpr Glyphs kUnicodeGlyphs{"├─ ", "└─ ", "│  ", "   ", "…"};
constexpr Glyphs kAsciiGlyphs{"|- ", "`- ", "|  ", "   ", "..."};

std::string_view Symbol(Phase phase, bool unicode) {
  switch (phase) {
    case Phase::kSucceeded:
      return unicode ? "✔" : "+";
    case Phase::kFailed:
      return unicode ? "✖" : "x";
    case Phase::kError:
      return unicode ? "⚠" : "!";
    case Phase::kPending:
      return unicode ? "◷" : ".";
    case Phase::kRunning:
      return unicode ? "●" : "*";
    case Phase::kSkipped:
    case Phase::kOmitted:
      return unicode ? "○" : "-";
  }
  return "?";
}

// The SGR parameters of a phase's colour ("" for none).
std::string_view Color(Phase phase) {
  switch (phase) {
    case Phase::kSucceeded:
      return "32";
    case Phase::kFailed:
    case Phase::kError:
      return "31";
    case Phase::kRunning:
      return "36";
    case Phase::kSkipped:
    case Phase::kOmitted:
      return "2";
    case Phase::kPending:
      return "";
  }
  return "";
}

// Columns taken by UTF-8 text: one per code point.
size_t Width(std::string_view s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

// The first `n` code points of `s`.
std::string_view Head(std::string_view s, size_t n) {
  size_t points = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (points == n) return s.substr(0, i);
      ++points;
    }
  }
  return s;
}

// `s` cut to `width` columns, ending with the ellipsis when something was cut; 0: no limit.
std::string Fit(std::string_view s, size_t width, std::string_view ellipsis) {
  if (width == 0 || Width(s) <= width) return std::string(s);
  size_t e = Width(ellipsis);
  if (width <= e) return std::string(Head(s, width));
  return std::string(Head(s, width - e)) + std::string(ellipsis);
}

std::string PadRight(std::string s, size_t width) {
  size_t w = Width(s);
  if (w < width) s.append(width - w, ' ');
  return s;
}

std::string PadLeft(const std::string& s, size_t width) {
  size_t w = Width(s);
  return w < width ? std::string(width - w, ' ') + s : s;
}

// A message on one line: control characters (newlines, tabs, escapes) become spaces.
std::string OneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  return out;
}

// The same form as `kiln get`'s durations: "0.4s", "12.0s", "3m07s", "2h05m"; "" before start.
std::string Duration(Time started, Time finished, Time now) {
  if (started == Time{}) return "";
  Time end = finished == Time{} ? now : finished;
  long long ms = std::max<long long>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(end - started).count());
  char buf[32];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60'000, ms / 1000 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", ms / 3'600'000, ms / 60'000 % 60);
  }
  return buf;
}

// Orders ids as people read them: runs of digits by value, so "wf[2]" comes before "wf[10]".
bool NaturalLess(std::string_view a, std::string_view b) {
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      std::string_view x = a.substr(i, ie - i), y = b.substr(j, je - j);
      x.remove_prefix(std::min(x.find_first_not_of('0'), x.size()));
      y.remove_prefix(std::min(y.find_first_not_of('0'), y.size()));
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i;
    ++j;
  }
  if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
  return a < b;  // equal but for leading zeros: any fixed order
}

// Siblings: started ones in start order, then the ones that have not started.
bool SiblingLess(const NodeState* a, const NodeState* b) {
  bool a_started = a->started != Time{}, b_started = b->started != Time{};
  if (a_started != b_started) return a_started;
  if (a->started != b->started) return a->started < b->started;
  return NaturalLess(a->id, b->id);
}

// A drawn node: its parent and children among the drawn nodes (indices into the preorder list).
struct Item {
  const NodeState* node;
  int parent;
  std::vector<int> kids;
};

// The drawn nodes in depth-first order. Iterative: a workflow's depth is the user's to choose.
std::vector<Item> Layout(const scheduler::WorkflowState& state,
                         const std::map<std::string, std::vector<const NodeState*>>& children) {
  std::vector<const NodeState*> roots;
  for (const auto& [id, n] : state.nodes) {
    if (n.parent.empty() || !state.nodes.count(n.parent)) roots.push_back(&n);
  }
  auto rank = [&](const NodeState* n) {
    return n->id == state.root ? 0 : n->id == state.exit_root ? 1 : 2;
  };
  std::sort(roots.begin(), roots.end(), [&](const NodeState* a, const NodeState* b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return SiblingLess(a, b);
  });
  // What is drawn below a node: its children, a StepGroup with one child replaced by that child.
  auto drawn_children = [&](const NodeState* n) {
    std::vector<const NodeState*> out;
    auto it = children.find(n->id);
    if (it == children.end()) return out;
    for (const NodeState* c : it->second) {
      auto grand = children.find(c->id);
      if (c->type == NodeType::kStepGroup && grand != children.end() && grand->second.size() == 1) {
        out.push_back(grand->second.front());
      } else {
        out.push_back(c);
      }
    }
    return out;
  };

  std::vector<Item> items;
  std::set<std::string> seen;  // a broken parent chain must not loop
  std::vector<std::pair<const NodeState*, int>> stack;
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.push_back({*it, -1});
  while (!stack.empty()) {
    auto [node, parent] = stack.back();
    stack.pop_back();
    if (!seen.insert(node->id).second) continue;
    int index = static_cast<int>(items.size());
    items.push_back({node, parent, {}});
    if (parent >= 0) items[parent].kids.push_back(index);
    std::vector<const NodeState*> kids = drawn_children(node);
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back({*it, index});
  }
  return items;
}

// Which nodes to draw in `room` lines: failed and errored ones first, then running, pending and
// the rest, each with its ancestors, in tree order within a class.
std::vector<bool> Choose(const std::vector<Item>& items, size_t room) {
  std::vector<bool> keep(items.size(), room >= items.size());
  if (room >= items.size()) return keep;
  auto klass = [](Phase p) {
    switch (p) {
      case Phase::kFailed:
      case Phase::kError:
        return 0;
      case Phase::kRunning:
        return 1;
      case Phase::kPending:
        return 2;
      default:
        return 3;
    }
  };
  size_t kept = 0;
  for (int k = 0; k < 4; ++k) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (keep[i] || klass(items[i].node->phase) != k) continue;
      size_t added = 0;
      for (int a = static_cast<int>(i); a >= 0 && !keep[a]; a = items[a].parent) ++added;
      if (kept + added > room) continue;
      for (int a = static_cast<int>(i); a >= 0 && !keep[a]; a = items[a].parent) keep[a] = true;
      kept += added;
    }
  }
  return keep;
}

// "… 12 more succeeded", or "… 5 more: 3 succeeded, 2 pending".
std::string MoreLine(const std::vector<Item>& items, const std::vector<bool>& keep,
                     std::string_view ellipsis) {
  std::map<Phase, size_t> hidden;
  size_t total = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!keep[i]) {
      ++hidden[items[i].node->phase];
      ++total;
    }
  }
  std::string line = std::string(ellipsis) + " " + std::to_string(total) + " more";
  auto lower = [](Phase p) {
    std::string s(scheduler::PhaseName(p));
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  if (hidden.size() == 1) return line + " " + lower(hidden.begin()->first);
  std::string sep = ": ";
  for (const auto& [phase, count] : hidden) {
    line += sep + std::to_string(count) + " " + lower(phase);
    sep = ", ";
  }
  return line;
}

// Wraps `text`, found at byte `offset` of `line`, in colour `sgr`, when it is still there (the
// line may have been cut before it).
std::string Paint(std::string line, size_t offset, std::string_view text, std::string_view sgr) {
  if (sgr.empty() || line.compare(offset, text.size(), text) != 0) return line;
  line.insert(offset + text.size(), "\x1b[0m");
  line.insert(offset, "\x1b[" + std::string(sgr) + "m");
  return line;
}

std::string NodeMessage(const NodeState& n) {
  if (n.phase != Phase::kFailed && n.phase != Phase::kError) return "";
  if (n.message.empty() && n.type == NodeType::kPod && n.exit_code && *n.exit_code != 0) {
    return "exit code " + std::to_string(*n.exit_code);
  }
  return OneLine(n.message);
}

}  // namespace

std::vector<std::string> RenderTree(const scheduler::WorkflowState& state, Time now,
                                    const TreeViewOptions& options) {
  const Glyphs& g = options.unicode ? kUnicodeGlyphs : kAsciiGlyphs;
  std::vector<std::string> lines;

  // The header: name, phase, duration and the workflow's message.
  std::string phase(scheduler::PhaseName(state.phase));
  std::string header = state.name + "  " + phase;
  if (std::string d = Duration(state.started, state.finished, now); !d.empty()) header += "  " + d;
  if (!state.message.empty()) header += "  " + OneLine(state.message);
  header = Fit(header, options.columns, g.ellipsis);
  if (options.color) header = Paint(header, state.name.size() + 2, phase, Color(state.phase));
  lines.push_back(std::move(header));

  std::map<std::string, std::vector<const NodeState*>> children;
  for (const auto& [id, n] : state.nodes) {
    if (!n.parent.empty() && state.nodes.count(n.parent)) children[n.parent].push_back(&n);
  }
  for (auto& [id, list] : children) std::sort(list.begin(), list.end(), SiblingLess);
  std::vector<Item> items = Layout(state, children);

  size_t room = items.size();
  if (options.rows > 0 && items.size() + 1 > options.rows)
    room = std::max<size_t>(options.rows, 3) - 2;
  std::vector<bool> keep = Choose(items, room);

  // Glyphs over the drawn nodes only, so the last one drawn of a parent's children gets └─.
  struct Row {
    std::string prefix;  // glyphs in front of the node
    std::string label;   // prefix, symbol, name and retries
    std::string duration;
    std::string message;
    const NodeState* node;
  };
  std::vector<Row> rows;
  std::vector<std::string> indent(items.size());  // drawn below each node, for its children
  for (size_t i = 0; i < items.size(); ++i) {
    if (!keep[i]) continue;
    const Item& item = items[i];
    const NodeState& n = *item.node;
    std::string prefix;
    if (item.parent >= 0) {
      const std::vector<int>& siblings = items[item.parent].kids;
      auto later = std::find(siblings.begin(), siblings.end(), static_cast<int>(i));
      bool last = std::none_of(later + 1, siblings.end(), [&](int s) { return keep[s]; });
      prefix = indent[item.parent] + std::string(last ? g.last : g.tee);
      indent[i] = indent[item.parent] + std::string(last ? g.space : g.bar);
    }
    Row row;
    row.node = &n;
    row.prefix = prefix;
    row.label = prefix + std::string(Symbol(n.phase, options.unicode)) + " " + OneLine(n.name);
    if (n.type == NodeType::kRetry) {
      int retries = 0;
      if (auto it = children.find(n.id); it != children.end()) {
        for (const NodeState* c : it->second) retries = std::max(retries, c->attempt);
      }
      if (retries > 0)
        row.label += " (" + std::to_string(retries) + (retries == 1 ? " retry)" : " retries)");
    }
    if (n.type != NodeType::kStepGroup) row.duration = Duration(n.started, n.finished, now);
    row.message = NodeMessage(n);
    rows.push_back(std::move(row));
  }

  size_t label_w = 0, duration_w = 0;
  for (const Row& r : rows) {
    label_w = std::max(label_w, Width(r.label));
    duration_w = std::max(duration_w, Width(r.duration));
  }
  // Long names are cut rather than pushing durations and messages off a narrow terminal.
  if (options.columns > 0)
    label_w = std::min(label_w, std::max<size_t>(16, options.columns * 3 / 5));
  for (const Row& r : rows) {
    std::string line = PadRight(Fit(r.label, label_w, g.ellipsis), label_w);
    if (duration_w > 0) line += "  " + PadLeft(r.duration, duration_w);
    if (!r.message.empty()) line += "  " + r.message;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    line = Fit(line, options.columns, g.ellipsis);
    if (options.color) {
      line = Paint(std::move(line), r.prefix.size(), Symbol(r.node->phase, options.unicode),
                   Color(r.node->phase));
    }
    lines.push_back(std::move(line));
  }
  if (rows.size() < items.size())
    lines.push_back(Fit(MoreLine(items, keep, g.ellipsis), options.columns, g.ellipsis));
  return lines;
}

bool LocaleIsUtf8(const char* lc_all, const char* lc_ctype, const char* lang) {
  for (const char* v : {lc_all, lc_ctype, lang}) {
    if (v == nullptr || *v == '\0') continue;
    std::string s(v);
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
  }
  return false;
}

std::string EraseLines(size_t previous_lines) {
  if (previous_lines == 0) return "";
  return "\r\x1b[" + std::to_string(previous_lines) + "A\x1b[J";
}

}  // namespace kiln::cli
