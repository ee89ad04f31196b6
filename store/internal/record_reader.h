// The record types' columns, in the order statements.h selects them, read by either backend's
// column reader (a type with Text(), Int() and OptionalInt() that reads left to right; Text()
// of a NULL is "").
#ifndef KILN_STORE_INTERNAL_RECORD_READER_H_
#define KILN_STORE_INTERNAL_RECORD_READER_H_

#include <map>
#include <string>
#include <string_view>

#include "store/records.h"

namespace kiln::store::internal {

// The labels of a row from the JSON object the statements aggregate them into: "" (SQL NULL:
// PostgreSQL's aggregate over no labels) and "{}" are none. Labels are written as UTF-8 without
// NUL bytes (internal/checks.h), so the object always parses; should another program have
// stored something that does not, the row reads as having no labels rather than failing.
std::map<std::string, std::string> LabelsFromJson(std::string_view json);

template <typename Reader>
WorkflowRecord ReadWorkflowRow(Reader& r) {
  WorkflowRecord w;
  w.uid = r.Text();
  w.name = r.Text();
  w.namespace_ = r.Text();
  w.kind = r.Text();
  w.spec = r.Text();
  w.parameters_json = r.Text();
  w.phase = r.Text();
  w.message = r.Text();
  w.created_at = r.Int();
  w.started_at = r.Int();
  w.finished_at = r.Int();
  w.labels = LabelsFromJson(r.Text());
  return w;
}

template <typename Reader>
NodeRecord ReadNodeRow(Reader& r) {
  NodeRecord n;
  n.workflow_uid = r.Text();
  n.id = r.Text();
  n.parent_id = r.Text();
  n.display_name = r.Text();
  n.template_name = r.Text();
  n.type = r.Text();
  n.phase = r.Text();
  n.attempt = static_cast<int>(r.Int());
  n.started_at = r.Int();
  n.finished_at = r.Int();
  n.exit_code = r.OptionalInt();
  n.message = r.Text();
  n.inputs_json = r.Text();
  n.outputs_json = r.Text();
  return n;
}

template <typename Reader>
ParameterRecord ReadParameterRow(Reader& r) {
  ParameterRecord p;
  p.workflow_uid = r.Text();
  p.node_id = r.Text();
  p.kind = r.Text();
  p.name = r.Text();
  p.value = r.Text();
  return p;
}

template <typename Reader>
ArtifactRecord ReadArtifactRow(Reader& r) {
  ArtifactRecord a;
  a.workflow_uid = r.Text();
  a.node_id = r.Text();
  a.direction = r.Text();
  a.name = r.Text();
  a.uri = r.Text();
  a.sha256 = r.Text();
  a.size = r.Int();
  return a;
}

template <typename Reader>
EventRecord ReadEventRow(Reader& r) {
  EventRecord e;
  e.seq = r.Int();
  e.workflow_uid = r.Text();
  e.node_id = r.Text();
  e.at = r.Int();
  e.kind = r.Text();
  e.from_phase = r.Text();
  e.to_phase = r.Text();
  e.message = r.Text();
  e.data_json = r.Text();
  return e;
}

template <typename Reader>
TemplateRecord ReadTemplateRow(Reader& r) {
  TemplateRecord t;
  t.namespace_ = r.Text();
  t.name = r.Text();
  t.kind = r.Text();
  t.spec = r.Text();
  t.uid = r.Text();
  t.created_at = r.Int();
  t.updated_at = r.Int();
  t.labels = LabelsFromJson(r.Text());
  return t;
}

}  // namespace kiln::store::internal

#endif  // KILN_STORE_INTERNAL_RECORD_READER_H_
