#include "dag/internal/yaml_tree.h"

#include <yaml.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "base/strings.h"

namespace kiln::dag::yaml {

NodeType Node::Type() const {
  if (tree_ == nullptr) return NodeType::kUndefined;
  return tree_->nodes_[index_].type;
}

std::string_view Node::Scalar() const {
  if (tree_ == nullptr) return {};
  const Tree::Data& d = tree_->nodes_[index_];
  if (d.type != NodeType::kScalar && d.type != NodeType::kNull) return {};
  return std::string_view(tree_->text_).substr(d.first, d.count);
}

std::string_view Node::Tag() const {
  if (tree_ == nullptr) return {};
  const Tree::Data& d = tree_->nodes_[index_];
  if (d.style == 0) return "?";
  if (d.style == 1) return "!";
  return tree_->tags_[d.tag];
}

yaml::Mark Node::Mark() const {
  if (tree_ == nullptr) return {};
  const Tree::Data& d = tree_->nodes_[index_];
  return yaml::Mark{static_cast<int>(d.line), static_cast<int>(d.column)};
}

size_t Node::size() const {
  if (tree_ == nullptr) return 0;
  const Tree::Data& d = tree_->nodes_[index_];
  return (d.type == NodeType::kSequence || d.type == NodeType::kMap) ? d.count : 0;
}

Node::iterator Node::begin() const {
  if (!IsSequence() && !IsMap()) return iterator(tree_, nullptr, false);
  const Tree::Data& d = tree_->nodes_[index_];
  return iterator(tree_, tree_->children_.data() + d.first, d.type == NodeType::kMap);
}

Node::iterator Node::end() const {
  if (!IsSequence() && !IsMap()) return iterator(tree_, nullptr, false);
  const Tree::Data& d = tree_->nodes_[index_];
  bool is_map = d.type == NodeType::kMap;
  return iterator(tree_, tree_->children_.data() + d.first + d.count * (is_map ? 2 : 1), is_map);
}

Node::IterValue Node::iterator::operator*() const {
  IterValue v;
  if (is_map_) {
    v.first = Node(tree_, pos_[0]);
    v.second = Node(tree_, pos_[1]);
  } else {
    static_cast<Node&>(v) = Node(tree_, pos_[0]);
  }
  return v;
}

class TreeBuilder {
 public:
  TreeBuilder(Tree& tree, std::string_view file, const BuildOptions& options, Diagnostics& diags)
      : tree_(tree), file_(file), options_(options), diags_(diags) {}

  void Run(std::string_view text) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
      diags_.Error(file_, {}, "", "cannot initialise the YAML parser (out of memory)");
      return;
    }
    yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()), text.size());
    bool doc_ok = true;
    while (true) {
      yaml_event_t event;
      if (!yaml_parser_parse(&parser, &event)) {
        ReportSyntaxError(parser);
        break;
      }
      yaml_event_type_t type = event.type;
      if (type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&event);
        break;
      }
      if (type == YAML_DOCUMENT_START_EVENT) {
        doc_ok = true;
        anchors_.clear();
        stack_.clear();
        doc_root_ = kNone;
      } else if (type == YAML_DOCUMENT_END_EVENT) {
        if (doc_ok && doc_root_ != kNone) {
          if (expanded_[doc_root_] > options_.max_nodes) {
            Error(doc_root_, "document has more than " + std::to_string(options_.max_nodes) +
                                 " YAML nodes once aliases are expanded; refusing it (a manifest this "
                                 "large is likely an alias bomb; raise --max-nodes if it is real)");
          } else {
            tree_.documents_.emplace_back(&tree_, doc_root_);
          }
        }
      } else if (doc_ok) {
        doc_ok = HandleNodeEvent(event);
        if (!doc_ok) {
          // Stop reading: what follows a refused document (deep nesting, say) can cost libyaml's
          // scanner quadratic time, and nothing after it would be trusted anyway.
          yaml_event_delete(&event);
          break;
        }
      }
      yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
  }

 private:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  struct Open {
    uint32_t node;
    size_t child_start;  // index into pending_ where this collection's children begin
  };

  void Error(uint32_t node, std::string message) {
    const Tree::Data& d = tree_.nodes_[node];
    diags_.Error(file_, Location{d.line + 1, d.column + 1}, "", std::move(message));
  }

  void ReportSyntaxError(const yaml_parser_t& parser) {
    std::string msg = "YAML syntax error: ";
    msg += parser.problem ? parser.problem : "malformed document";
    if (parser.context) {
      msg += std::string(" (") + parser.context;
      if (parser.context_mark.line != parser.problem_mark.line || parser.context_mark.column != parser.problem_mark.column) {
        msg += " that started at line " + std::to_string(parser.context_mark.line + 1) + ", column " +
               std::to_string(parser.context_mark.column + 1);
      }
      msg += ")";
    }
    diags_.Error(file_, Location{static_cast<uint32_t>(parser.problem_mark.line + 1),
                                 static_cast<uint32_t>(parser.problem_mark.column + 1)},
                 "", msg);
  }

  uint32_t NewNode(NodeType type, const yaml_mark_t& mark, const unsigned char* tag, bool quoted) {
    Tree::Data d{};
    d.type = type;
    d.line = static_cast<uint32_t>(mark.line);
    d.column = static_cast<uint32_t>(mark.column);
    if (tag != nullptr && !(tag[0] == '!' && tag[1] == '\0')) {
      d.style = 2;
      std::string t = reinterpret_cast<const char*>(tag);
      if (t == "tag:yaml.org,2002:str") t = "!!str";
      else if (t == "tag:yaml.org,2002:int") t = "!!int";
      auto it = std::find(tree_.tags_.begin(), tree_.tags_.end(), t);
      if (it == tree_.tags_.end()) {
        if (tree_.tags_.size() < 65535) tree_.tags_.push_back(t);
        it = tree_.tags_.end() - 1;
      }
      d.tag = static_cast<uint16_t>(it - tree_.tags_.begin());
    } else {
      d.style = (quoted || tag != nullptr) ? 1 : 0;
    }
    tree_.nodes_.push_back(d);
    expanded_.push_back(1);
    return static_cast<uint32_t>(tree_.nodes_.size() - 1);
  }

  void Register(const yaml_char_t* anchor, uint32_t node) {
    if (anchor != nullptr) anchors_[reinterpret_cast<const char*>(anchor)] = node;
  }

  // Adds `node` as the next child of the innermost open collection (or as the document root).
  void Attach(uint32_t node) {
    if (stack_.empty()) {
      doc_root_ = node;
    } else {
      pending_.push_back(node);
    }
  }

  bool HandleNodeEvent(const yaml_event_t& event) {
    switch (event.type) {
      case YAML_SCALAR_EVENT: {
        const auto& s = event.data.scalar;
        std::string_view value(reinterpret_cast<const char*>(s.value), s.length);
        bool plain = s.style == YAML_PLAIN_SCALAR_STYLE || s.style == YAML_ANY_SCALAR_STYLE;
        bool is_null = plain && s.tag == nullptr &&
                       (value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL");
        uint32_t n = NewNode(is_null ? NodeType::kNull : NodeType::kScalar, event.start_mark, s.tag, !plain);
        Tree::Data& d = tree_.nodes_[n];
        if (tree_.text_.size() + value.size() > std::numeric_limits<uint32_t>::max()) {
          Error(n, "document text too large");
          return false;
        }
        d.first = static_cast<uint32_t>(tree_.text_.size());
        d.count = static_cast<uint32_t>(value.size());
        tree_.text_.append(value);
        Register(s.anchor, n);
        Attach(n);
        return true;
      }
      case YAML_ALIAS_EVENT: {
        std::string name = reinterpret_cast<const char*>(event.data.alias.anchor);
        auto it = anchors_.find(name);
        if (it == anchors_.end()) {
          diags_.Error(file_, Location{static_cast<uint32_t>(event.start_mark.line + 1),
                                       static_cast<uint32_t>(event.start_mark.column + 1)},
                       "", "unknown YAML anchor " + Quote("*" + name) + "; define it with &" + name + " first");
          return false;
        }
        Attach(it->second);
        return true;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        bool is_map = event.type == YAML_MAPPING_START_EVENT;
        const yaml_char_t* tag = is_map ? event.data.mapping_start.tag : event.data.sequence_start.tag;
        const yaml_char_t* anchor = is_map ? event.data.mapping_start.anchor : event.data.sequence_start.anchor;
        uint32_t n = NewNode(is_map ? NodeType::kMap : NodeType::kSequence, event.start_mark, tag, false);
        if (stack_.size() >= options_.max_depth) {
          Error(n, "YAML nesting deeper than " + std::to_string(options_.max_depth) + " levels; refusing the document");
          return false;
        }
        Attach(n);
        Register(anchor, n);
        stack_.push_back(Open{n, pending_.size()});
        return true;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        Open open = stack_.back();
        stack_.pop_back();
        Tree::Data& d = tree_.nodes_[open.node];
        size_t count = pending_.size() - open.child_start;
        const uint32_t* kids = pending_.data() + open.child_start;
        if (d.type == NodeType::kMap) {
          if (!MergeKeysAndCheck(open.node, open.child_start)) return false;
          count = pending_.size() - open.child_start;
          kids = pending_.data() + open.child_start;
        }
        uint64_t expanded = 1;
        for (size_t i = 0; i < count; ++i) {
          expanded += expanded_[kids[i]];
          if (expanded > options_.max_nodes) expanded = options_.max_nodes + 1;  // saturate
        }
        expanded_[open.node] = expanded;
        d.first = static_cast<uint32_t>(tree_.children_.size());
        d.count = static_cast<uint32_t>(d.type == NodeType::kMap ? count / 2 : count);
        tree_.children_.insert(tree_.children_.end(), kids, kids + count);
        pending_.resize(open.child_start);
        return true;
      }
      default:
        return true;
    }
  }

  std::string_view KeyText(uint32_t node) const {
    const Tree::Data& d = tree_.nodes_[node];
    if (d.type != NodeType::kScalar && d.type != NodeType::kNull) return {};
    return std::string_view(tree_.text_).substr(d.first, d.count);
  }

  // Applies YAML merge keys ("<<: *defaults", as Go's YAML reader does) and reports duplicate
  // keys, which Go's reader (Argo's and kubectl's) rejects. Works on pending_[start...].
  bool MergeKeysAndCheck(uint32_t map, size_t start) {
    std::vector<uint32_t> pairs(pending_.begin() + static_cast<std::ptrdiff_t>(start), pending_.end());
    bool has_merge = false;
    for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
      if (tree_.nodes_[pairs[i]].style == 0 && KeyText(pairs[i]) == "<<") has_merge = true;
    }
    // Duplicate check among the map's own keys.
    const size_t n = pairs.size() / 2;
    if (n > 1) {
      std::vector<std::pair<std::string_view, uint32_t>> keys;
      keys.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        const Tree::Data& k = tree_.nodes_[pairs[2 * i]];
        if (k.type != NodeType::kScalar && k.type != NodeType::kNull) continue;
        keys.emplace_back(KeyText(pairs[2 * i]), pairs[2 * i]);
      }
      std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 1; i < keys.size(); ++i) {
        if (keys[i].first == keys[i - 1].first && keys[i].first != "<<") {
          // Report at the later occurrence.
          uint32_t later = std::max(keys[i].second, keys[i - 1].second);
          Error(later, "duplicate key " + Quote(keys[i].first) + " in a map; each key may appear once");
        }
      }
    }
    if (!has_merge) return true;
    std::vector<uint32_t> merged;
    std::vector<uint32_t> sources;
    for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
      if (tree_.nodes_[pairs[i]].style == 0 && KeyText(pairs[i]) == "<<") {
        uint32_t v = pairs[i + 1];
        const Tree::Data& vd = tree_.nodes_[v];
        if (vd.type == NodeType::kMap) {
          sources.push_back(v);
        } else if (vd.type == NodeType::kSequence) {
          for (uint32_t k = 0; k < vd.count; ++k) sources.push_back(tree_.children_[vd.first + k]);
        }
        for (uint32_t s : sources) {
          if (tree_.nodes_[s].type != NodeType::kMap) {
            Error(pairs[i], "a merge key (<<) needs a map or a list of maps");
            return false;
          }
        }
      } else {
        merged.push_back(pairs[i]);
        merged.push_back(pairs[i + 1]);
      }
    }
    // Keys of the map itself win over merged ones; earlier sources win over later ones.
    for (uint32_t s : sources) {
      const Tree::Data& sd = tree_.nodes_[s];
      for (uint32_t k = 0; k < sd.count; ++k) {
        uint32_t key = tree_.children_[sd.first + 2 * k];
        uint32_t value = tree_.children_[sd.first + 2 * k + 1];
        bool present = false;
        for (size_t j = 0; j < merged.size(); j += 2) {
          if (KeyText(merged[j]) == KeyText(key)) {
            present = true;
            break;
          }
        }
        if (!present) {
          merged.push_back(key);
          merged.push_back(value);
        }
      }
    }
    (void)map;
    pending_.resize(start);
    pending_.insert(pending_.end(), merged.begin(), merged.end());
    return true;
  }

  Tree& tree_;
  std::string_view file_;
  const BuildOptions& options_;
  Diagnostics& diags_;
  std::unordered_map<std::string, uint32_t> anchors_;
  std::vector<Open> stack_;
  std::vector<uint32_t> pending_;
  std::vector<uint64_t> expanded_;  // node count once aliases are expanded, saturated
  uint32_t doc_root_ = kNone;
};

std::unique_ptr<Tree> Tree::Parse(std::string_view file, std::string_view text, const BuildOptions& options,
                                  Diagnostics& diags) {
  auto tree = std::make_unique<Tree>();
  tree->nodes_.reserve(text.size() / 8 + 16);
  tree->text_.reserve(text.size());
  TreeBuilder builder(*tree, file, options, diags);
  builder.Run(text);
  return tree;
}

}  // namespace kiln::dag::yaml
