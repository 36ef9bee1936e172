// The three forms of `vmm-cgroupctl status`: a tree for a terminal, JSON for tools (its schema is
// docs/ctl-status.schema.json) and the Prometheus text exposition format for node_exporter's textfile
// collector. Pure: values in, text out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model.h"

namespace vmmcg::ctl {

// The version of the JSON document (its "version" member); the schema's.
inline constexpr int status_json_version = 1;

// colour: ANSI colours for a terminal (the caller decides: a tty, NO_COLOR unset).
std::string format_tree(const StatusReport &report, bool colour);
std::string format_json(const StatusReport &report);
std::string format_prometheus(const StatusReport &report);

// Where a thread is, as the tree shows it: "S", "O" (v1), "S/vcpu", "S/overhead" (v2), the path where it
// is elsewhere, "cpu:S cpuset:O" where hierarchies differ.
std::string location_label(const ContainerStatus &status, const ThreadStatus &thread);

// A label value as the exposition format writes it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);
// Nanoseconds as seconds with nine decimals ("1.500000000").
std::string seconds_text(std::uint64_t ns);

} // namespace vmmcg::ctl
