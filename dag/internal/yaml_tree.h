// A compact, located YAML document tree built from libyaml's event parser. Private to dag/.
//
// Why not yaml-cpp: measured on the same 10k-task manifest, yaml-cpp's tree takes ~10x longer to
// build than libyaml's events plus this tree (docs/benchmarks.md), and ~9 KB per task of memory.
// The handle API below mirrors the subset of yaml-cpp's YAML::Node that the parser uses.
//
// Nodes live in one array; scalars in one text arena; aliases share the anchored node (so a
// "billion laughs" document stays small in memory, and its expanded size is computed, not walked).
// Thread-safety: a Tree is immutable once built and may be read from several threads.
#ifndef KILN_DAG_INTERNAL_YAML_TREE_H_
#define KILN_DAG_INTERNAL_YAML_TREE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dag/diagnostic.h"

namespace kiln::dag::yaml {

enum class NodeType : uint8_t { kUndefined, kNull, kScalar, kSequence, kMap };

// 0-based, as yaml-cpp's Mark; line -1 when unknown.
struct Mark {
  int line = -1;
  int column = -1;
};

class Tree;

// A handle to a node: a tree and an index. Cheap to copy; valid while the Tree lives.
class Node {
 public:
  Node() = default;
  Node(const Tree* tree, uint32_t index) : tree_(tree), index_(index) {}

  NodeType Type() const;
  bool IsDefined() const { return Type() != NodeType::kUndefined; }
  bool IsNull() const { return Type() == NodeType::kNull; }
  bool IsScalar() const { return Type() == NodeType::kScalar; }
  bool IsSequence() const { return Type() == NodeType::kSequence; }
  bool IsMap() const { return Type() == NodeType::kMap; }

  // The scalar's text ("" for other nodes). Plain nulls ("~", "null", "") are kNull with text.
  std::string_view Scalar() const;
  // "?" for a plain scalar, "!" for a quoted or block one, else the explicit tag ("!!str").
  std::string_view Tag() const;
  yaml::Mark Mark() const;
  // Children: elements of a sequence, pairs of a map.
  size_t size() const;

  struct IterValue;
  class iterator;
  iterator begin() const;
  iterator end() const;

 private:
  friend class Tree;
  const Tree* tree_ = nullptr;
  uint32_t index_ = 0;
};

// What an iterator yields: for a sequence, the element itself; for a map, a pair in first/second
// (as yaml-cpp's iterators do).
struct Node::IterValue : Node {
  Node first;
  Node second;
};

class Node::iterator {
 public:
  iterator(const Tree* tree, const uint32_t* pos, bool is_map) : tree_(tree), pos_(pos), is_map_(is_map) {}
  IterValue operator*() const;
  struct Arrow {
    IterValue value;
    const IterValue* operator->() const { return &value; }
  };
  Arrow operator->() const { return Arrow{**this}; }
  iterator& operator++() {
    pos_ += is_map_ ? 2 : 1;
    return *this;
  }
  bool operator==(const iterator& other) const { return pos_ == other.pos_; }
  bool operator!=(const iterator& other) const { return pos_ != other.pos_; }

 private:
  const Tree* tree_;
  const uint32_t* pos_;
  bool is_map_;
};

struct BuildOptions {
  size_t max_depth = 100;        // nesting of collections
  size_t max_nodes = 4'000'000;  // nodes once aliases are expanded
};

class Tree {
 public:
  Tree() = default;
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  // Parses every document of `text`. Problems (syntax errors with their position, nesting past
  // max_depth, alias expansion past max_nodes, duplicate keys, unknown anchors) go to `diags`
  // under `file`; a document with such a problem is dropped and the rest of the file is not
  // read; documents before it are kept.
  static std::unique_ptr<Tree> Parse(std::string_view file, std::string_view text, const BuildOptions& options,
                    Diagnostics& diags);

  const std::vector<Node>& documents() const { return documents_; }
  size_t node_count() const { return nodes_.size(); }

 private:
  friend class Node;
  friend class Node::iterator;
  friend class TreeBuilder;

  struct Data {
    NodeType type;
    uint8_t style;      // 0 plain, 1 quoted or block, 2 explicit tag
    uint16_t tag;       // index into tags_ when style == 2
    uint32_t line;
    uint32_t column;
    uint32_t first;     // scalar: offset into text_; collection: offset into children_
    uint32_t count;     // scalar: length; sequence: elements; map: pairs
  };

  std::vector<Data> nodes_;
  std::vector<uint32_t> children_;
  std::string text_;
  std::vector<std::string> tags_;
  std::vector<Node> documents_;
};

}  // namespace kiln::dag::yaml

#endif  // KILN_DAG_INTERNAL_YAML_TREE_H_
