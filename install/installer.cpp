#include "installer.h"

#include <fnmatch.h>

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "paths.h"
#include "toml_text.h"
#include "wrapper_config.h"

namespace vmmcg::install {

namespace {

using Path = std::vector<std::string>;
using View = toml::node_view<const toml::node>;

constexpr std::string_view runc_v2 = "io.containerd.runc.v2";
constexpr std::string_view our_annotations = "io.vmm-cgroup-hooks.*";
const Path cri_v2 = {"plugins", "io.containerd.grpc.v1.cri", "containerd"}; // containerd 1.x config version 2
const Path cri_v3 = {"plugins", "io.containerd.cri.v1.runtime", "containerd"}; // containerd 2.x, version 3
const Path crio_runtimes = {"crio", "runtime", "runtimes"};

View at(const toml::table &table, const Path &path)
{
	if (path.empty())
		return View(static_cast<const toml::node &>(table));
	View view = table[path.front()];
	for (std::size_t i = 1; i < path.size(); ++i)
		view = view[path[i]];
	return view;
}

Path operator+(Path path, const std::string &key)
{
	path.push_back(key);
	return path;
}

std::string dotted(const Path &path)
{
	std::string out;
	for (const auto &key : path)
		out += (out.empty() ? "" : ".") + toml_key(key);
	return out;
}

std::string dir_of(const std::string &path)
{
	return parent_path(path);
}

std::string tag_of(const Settings &s)
{
	return "handler " + s.handler;
}

std::string engine_name(Engine engine)
{
	switch (engine) {
	case Engine::containerd:
		return "containerd";
	case Engine::crio:
		return "crio";
	case Engine::podman:
		return "podman";
	}
	return "?";
}

std::string uninstall_hint(const Settings &s)
{
	return "`vmm-cgroup-install uninstall --engine " + engine_name(s.engine) +
	       (s.handler == "vmm" ? std::string() : " --handler " + s.handler) + "` removes it.";
}

// Erases the table at path (if there) and prunes what became empty: the tree as it was before a block
// added that table.
toml::table without(toml::table tree, const Path &path)
{
	toml::table *parent = &tree;
	for (std::size_t i = 0; i + 1 < path.size() && parent; ++i)
		parent = (*parent)[path[i]].as_table();
	if (parent)
		parent->erase(path.back());
	prune_empty_tables(tree);
	return tree;
}

toml::table pruned(toml::table tree)
{
	prune_empty_tables(tree);
	return tree;
}

// The result of an edit, parsed, must be the original plus exactly the table the block holds.
void check_only_added(const toml::table &before, const toml::table &after, const Path &added,
		      const std::string &what)
{
	if (!at(after, added))
		throw HostError(what + ": the edited file has no " + dotted(added) + " (not written)");
	if (pruned(before) != without(after, added))
		throw HostError(what + ": the edit changed more than " + dotted(added) + " (not written)");
}

std::string created_header(const std::string &engine, const std::string &what)
{
	return "# Created by vmm-cgroup-install: there was no " + what + ", so " + engine +
	       "'s defaults apply, with the block below.\n# `vmm-cgroup-install uninstall --engine " +
	       engine + "` removes this file.\n";
}

// ------------------------------------------------------------------------------------------------------
// The wrapper's runtime.json

std::string runtime_json_text(const nlohmann::ordered_json &doc)
{
	return doc.dump(2) + "\n";
}

nlohmann::ordered_json parse_json(const std::string &text, const std::string &what)
{
	try {
		auto doc = nlohmann::ordered_json::parse(text);
		if (!doc.is_object())
			throw InputError(what + ": not a JSON object: left alone");
		return doc;
	} catch (const nlohmann::json::parse_error &e) {
		throw InputError(what + ": not valid JSON (" + e.what() + "): left alone");
	}
}

bool wrapper_registered_after(const HostRoot &root, const Settings &s, const Plan &plan);

void plan_runtime_json_install(const HostRoot &root, const Settings &s, const Defaults &d, Plan &plan)
{
	const std::string &path = d.runtime_json;
	auto existing = root.read(path);
	nlohmann::ordered_json doc =
		existing ? parse_json(*existing, root.shown(path)) : nlohmann::ordered_json::object();
	if (s.runtime)
		doc["runtime"] = *s.runtime;
	if (s.hook_dir != d.hook_dir)
		doc["hook_dir"] = s.hook_dir;
	if (s.hook_config)
		doc["hook_config"] = *s.hook_config;
	if (!existing && doc.empty())
		return; // the wrapper's built-in defaults are what is wanted
	std::string text = runtime_json_text(doc);
	// what the wrapper will read, read as the wrapper reads it
	runtime::WrapperConfig defaults;
	defaults.hook_dir = d.hook_dir;
	try {
		runtime::parse_wrapper_config(text, defaults);
	} catch (const InputError &e) {
		throw InputError(root.shown(path) + ": " + e.what() + ": left alone");
	}
	if (s.runtime && !root.executable(*s.runtime))
		plan.notes.push_back("warning: --runtime " + *s.runtime +
				     " is not an executable file on the host");
	// A file that was there before the first registration is backed up even when unchanged: the last
	// uninstall puts the backup back, and a file without a backup is one this installer created.
	bool first = !wrapper_registered_after(root, s, Plan{});
	plan.changes.push_back(
		{path, text, existing.has_value() && first,
		 std::string(existing ? "updated" : "written") + " (the wrapper's configuration)"});
}

void plan_runtime_json_uninstall(const HostRoot &root, const Defaults &d, Plan &plan)
{
	const std::string &path = d.runtime_json;
	const std::string backup = path + backup_suffix;
	if (auto saved = root.read(backup)) {
		plan.changes.push_back({path, *saved, false, "restored from " + root.shown(backup)});
		plan.changes.push_back({backup, std::nullopt, false, "removed"});
	} else if (root.exists(path)) {
		plan.changes.push_back({path, std::nullopt, false, "removed (the wrapper's configuration)"});
	}
	plan.dirs_to_rm.push_back(dir_of(path));
}

// ------------------------------------------------------------------------------------------------------
// containerd

struct CopiedOptions {
	std::optional<bool> systemd_cgroup;
	std::optional<std::string> root;
	std::string from;
};

// What the handler takes over from the default runc handler: it is that handler with another binary.
CopiedOptions default_runc_options(const toml::table &config, const Path &cri)
{
	View containerd = at(config, cri);
	std::string name = containerd["default_runtime_name"].value_or(std::string("runc"));
	View handler = containerd["runtimes"][name];
	auto type = handler["runtime_type"].value<std::string>();
	CopiedOptions copied;
	if (type && *type != runc_v2)
		return copied;
	copied.from = name;
	copied.systemd_cgroup = handler["options"]["SystemdCgroup"].value<bool>();
	copied.root = handler["options"]["Root"].value<std::string>();
	return copied;
}

std::string containerd_body(const Settings &s, const Path &handler, const CopiedOptions &copied)
{
	std::string body =
		"# The runtime handler \"" + s.handler + "\" (a RuntimeClass with handler: " + s.handler +
		"): runc's shim with vmm-cgroup-runtime as\n# its binary, which adds the hooks; the pod's "
		"io.vmm-cgroup-hooks.* annotations reach the spec.\n# Written by vmm-cgroup-install, "
		"do not edit inside this block;\n# " +
		uninstall_hint(s) + "\n";
	body += "[" + dotted(handler) + "]\n";
	body += "  runtime_type = " + toml_quote(runc_v2) + "\n";
	body += "  pod_annotations = [" + toml_quote(our_annotations) + "]\n";
	body += "  container_annotations = [" + toml_quote(our_annotations) + "]\n";
	body += "  [" + dotted(handler + "options") + "]\n";
	body += "    BinaryName = " + toml_quote(s.wrapper) + "\n";
	if (copied.root)
		body += "    Root = " + toml_quote(*copied.root) + "\n";
	if (copied.systemd_cgroup)
		body += std::string("    SystemdCgroup = ") + (*copied.systemd_cgroup ? "true" : "false") +
			"\n";
	return body;
}

void check_handler_result(const toml::table &result, const Path &handler, const Settings &s,
			  const std::string &what)
{
	View h = at(result, handler);
	if (h["runtime_type"].value<std::string>() != std::string(runc_v2) ||
	    h["options"]["BinaryName"].value<std::string>() != s.wrapper)
		throw HostError(what +
				": the edited file does not have the handler as written (not written)");
}

// Adds or replaces the handler's block in a file of ours or the user's; returns the new text.
std::string put_block(const std::string &text, const std::string &tag, const std::string &body,
		      const std::string &what)
{
	auto block = find_block(text, tag, what);
	return block ? replace_block(text, *block, tag, body) : append_block(text, tag, body);
}

std::string without_block(const std::string &text, const std::string &tag, const std::string &what)
{
	auto block = find_block(text, tag, what);
	return block ? remove_block(text, *block) : text;
}

int config_version(const toml::table &config, const std::string &what)
{
	auto version = config["version"].value<std::int64_t>();
	if (!version)
		throw InputError(what +
				 ": no 'version' key (a version 1 configuration, which is not supported): "
				 "left alone; `containerd config migrate` writes a current one");
	if (*version != 2 && *version != 3)
		throw InputError(what + ": version " + std::to_string(*version) +
				 " is not supported (2: containerd 1.x, 3: containerd 2.x): left alone");
	return static_cast<int>(*version);
}

// containerd 1.6 and 1.7 (version 2): an `imports` drop-in replaces whole plugin sections there, so the
// handler goes into config.toml itself. 2.x reads version 2 files too (and migrates them).
void containerd_v2_install(const HostRoot &root, const Settings &s, const std::string &main,
			   const std::optional<std::string> &existing, Plan &plan)
{
	const std::string what = root.shown(main);
	const std::string tag = tag_of(s);
	const std::string current =
		existing.value_or(created_header("containerd", "config.toml") + "version = 2\n");
	const std::string base_text = without_block(current, tag, what);
	const toml::table base = parse_toml(base_text, what);
	const Path handler = cri_v2 + "runtimes" + s.handler;
	if (at(base, handler))
		throw InputError(
			what + ": the runtime handler '" + s.handler +
			"' exists already (not added by vmm-cgroup-install): left alone; choose another "
			"with --handler");
	CopiedOptions copied = default_runc_options(base, cri_v2);
	std::string result_text = put_block(current, tag, containerd_body(s, handler, copied), what);
	toml::table result = parse_toml(result_text, what + " (as edited)");
	check_only_added(base, result, handler, what);
	check_handler_result(result, handler, s, what);
	if (!copied.from.empty() && (copied.systemd_cgroup || copied.root))
		plan.notes.push_back(std::string("copied from the default handler '") + copied.from +
				     "': " + (copied.systemd_cgroup ? "SystemdCgroup " : "") +
				     (copied.root ? "Root" : ""));
	if (result_text != current || !existing)
		plan.changes.push_back(
			{main, result_text, existing.has_value(),
			 "runtime handler '" + s.handler + "' " +
				 (find_block(current, tag, what) && existing ? "updated" : "added")});
}

void containerd_v2_uninstall(const HostRoot &root, const Settings &s, const std::string &main,
			     const std::string &current, Plan &plan)
{
	const std::string what = root.shown(main);
	const std::string tag = tag_of(s);
	auto block = find_block(current, tag, what);
	if (!block)
		return;
	std::string result_text = remove_block(current, *block);
	toml::table before = parse_toml(current, what);
	toml::table result = parse_toml(result_text, what + " (as edited)");
	const Path handler = cri_v2 + "runtimes" + s.handler;
	if (at(result, handler) || pruned(result) != without(before, handler))
		throw HostError(what +
				": removing the block would not remove exactly the handler (not written)");
	const std::string backup = main + backup_suffix;
	auto saved = root.read(backup);
	if (result_text == created_header("containerd", "config.toml") + "version = 2\n") {
		plan.changes.push_back(
			{main, std::nullopt, false, "removed (created by vmm-cgroup-install)"});
	} else {
		plan.changes.push_back(
			{main, result_text, false, "runtime handler '" + s.handler + "' removed"});
	}
	if (saved && *saved == result_text)
		plan.changes.push_back({backup, std::nullopt, false, "removed (the file is as it was)"});
	else if (saved)
		plan.notes.push_back(root.shown(backup) +
				     " kept: the file has changed since the first install");
}

bool imports_cover(const toml::table &config, const std::string &main, const std::string &dropin)
{
	const toml::array *imports = config["imports"].as_array();
	if (!imports)
		return false;
	for (const auto &entry : *imports) {
		auto pattern = entry.value<std::string>();
		if (!pattern)
			continue;
		std::string full = pattern->starts_with('/') ? *pattern : dir_of(main) + "/" + *pattern;
		if (::fnmatch(full.c_str(), dropin.c_str(), FNM_PATHNAME) == 0)
			return true;
	}
	return false;
}

std::string dropin_header(const std::string &engine)
{
	return "# Written by vmm-cgroup-install: one block per runtime handler. `vmm-cgroup-install "
	       "uninstall "
	       "--engine " +
	       engine + "`\n# removes them, and this file with the last one.\n";
}

// containerd 2.x (version 3): drop-ins under conf.d are merged into the plugin sections, so the handler
// is a file of its own, imported by config.toml.
void containerd_v3_install(const HostRoot &root, const Settings &s, const std::string &main,
			   const std::string &current, const toml::table &config, Plan &plan)
{
	const std::string what = root.shown(main);
	const std::string dropin = containerd_dropin(main);
	const std::string dropin_what = root.shown(dropin);
	const Path handler = cri_v3 + "runtimes" + s.handler;
	toml::table base = parse_toml(without_block(current, "imports", what), what);
	if (at(base, handler))
		throw InputError(what + ": the runtime handler '" + s.handler +
				 "' exists already: left alone; choose another with --handler");
	if (!imports_cover(base, main, dropin)) {
		if (base["imports"])
			throw InputError(
				what + ": its 'imports' does not include " + dropin +
				": left alone; add that file (or a glob matching it) to imports and run "
				"again");
		std::string body =
			"# The runtime handlers of vmm-cgroup-hooks (containerd 2.x merges drop-ins).\n# " +
			uninstall_hint(s) + "\nimports = [" + toml_quote(dropin) + "]\n";
		auto block = find_block(current, "imports", what);
		std::string result_text = block ? replace_block(current, *block, "imports", body)
						: prepend_block(current, "imports", body);
		toml::table result = parse_toml(result_text, what + " (as edited)");
		if (!imports_cover(result, main, dropin) || pruned(base) != without(result, {"imports"}))
			throw HostError(what + ": the edit changed more than 'imports' (not written)");
		if (result_text != current)
			plan.changes.push_back({main, result_text, true, "imports " + dropin});
	}
	auto existing = root.read(dropin);
	std::string drop = existing.value_or(dropin_header("containerd") + "version = 3\n");
	toml::table drop_base = parse_toml(without_block(drop, tag_of(s), dropin_what), dropin_what);
	if (at(drop_base, handler))
		throw InputError(dropin_what + ": the runtime handler '" + s.handler +
				 "' exists outside its block: left alone");
	std::string result_text =
		put_block(drop, tag_of(s), containerd_body(s, handler, default_runc_options(config, cri_v3)),
			  dropin_what);
	toml::table result = parse_toml(result_text, dropin_what + " (as edited)");
	check_only_added(drop_base, result, handler, dropin_what);
	check_handler_result(result, handler, s, dropin_what);
	if (result_text != drop)
		plan.changes.push_back({dropin, result_text, false, "runtime handler '" + s.handler + "'"});
	else if (!existing)
		plan.changes.push_back({dropin, result_text, false, "runtime handler '" + s.handler + "'"});
}

void containerd_v3_uninstall(const HostRoot &root, const Settings &s, const std::string &main,
			     const std::optional<std::string> &current, Plan &plan)
{
	const std::string dropin = containerd_dropin(main);
	auto drop = root.read(dropin);
	bool dropin_left = false;
	if (drop) {
		std::string result_text = without_block(*drop, tag_of(s), root.shown(dropin));
		parse_toml(result_text, root.shown(dropin) + " (as edited)");
		dropin_left = has_block(result_text);
		if (!dropin_left)
			plan.changes.push_back({dropin, std::nullopt, false, "removed"});
		else if (result_text != *drop)
			plan.changes.push_back(
				{dropin, result_text, false, "runtime handler '" + s.handler + "' removed"});
		plan.dirs_to_rm.push_back(dir_of(dropin));
	}
	if (!current || dropin_left)
		return;
	const std::string what = root.shown(main);
	auto block = find_block(*current, "imports", what);
	if (!block)
		return;
	std::string result_text = remove_block(*current, *block);
	parse_toml(result_text, what + " (as edited)");
	plan.changes.push_back({main, result_text, false, "imports of vmm-cgroup-hooks removed"});
	const std::string backup = main + backup_suffix;
	auto saved = root.read(backup);
	if (saved && *saved == result_text)
		plan.changes.push_back({backup, std::nullopt, false, "removed (the file is as it was)"});
	else if (saved)
		plan.notes.push_back(root.shown(backup) +
				     " kept: the file has changed since the first install");
}

void plan_containerd(const HostRoot &root, const Settings &s, const Defaults &d, Plan &plan)
{
	const std::string main =
		s.engine_config.empty() ? default_engine_config(Engine::containerd) : s.engine_config;
	auto existing = root.read(main);
	std::optional<toml::table> config;
	int version = 2;
	if (existing) {
		config = parse_toml(*existing, root.shown(main));
		version = config_version(*config, root.shown(main));
	}
	if (s.action == Action::install) {
		if (version == 2)
			containerd_v2_install(root, s, main, existing, plan);
		else
			containerd_v3_install(root, s, main, *existing, *config, plan);
		if (!plan.changes.empty())
			plan.notes.push_back(
				"restart containerd to use the handler: systemctl restart containerd");
		plan_runtime_json_install(root, s, d, plan);
	} else {
		if (existing && version == 2)
			containerd_v2_uninstall(root, s, main, *existing, plan);
		else
			containerd_v3_uninstall(root, s, main, existing, plan);
		if (!plan.changes.empty())
			plan.notes.push_back("restart containerd: systemctl restart containerd");
	}
}

// ------------------------------------------------------------------------------------------------------
// CRI-O

void plan_crio(const HostRoot &root, const Settings &s, const Defaults &d, Plan &plan)
{
	const std::string main =
		s.engine_config.empty() ? default_engine_config(Engine::crio) : s.engine_config;
	const std::string ours = crio_dropin(main);
	const std::string what = root.shown(ours);
	const Path handler = crio_runtimes + s.handler;
	auto existing = root.read(ours);
	if (s.action == Action::uninstall) {
		if (!existing)
			return;
		std::string result_text = without_block(*existing, tag_of(s), what);
		parse_toml(result_text, what + " (as edited)");
		if (!has_block(result_text))
			plan.changes.push_back({ours, std::nullopt, false, "removed"});
		else if (result_text != *existing)
			plan.changes.push_back(
				{ours, result_text, false, "runtime handler '" + s.handler + "' removed"});
		if (!plan.changes.empty())
			plan.notes.push_back(
				"reload CRI-O (SIGHUP re-reads the runtime handlers): systemctl reload crio");
		return;
	}
	// Every file CRI-O reads, in its order; the last default_runtime wins. A file that does not parse
	// would stop CRI-O itself: refuse.
	std::vector<std::string> files = {main};
	for (const auto &name : root.list(dir_of(ours), ".conf"))
		if (dir_of(ours) + "/" + name != ours)
			files.push_back(dir_of(ours) + "/" + name);
	std::string default_runtime = "runc";
	std::map<std::string, std::string> roots; // handler -> runtime_root, as the files set them
	for (const auto &file : files) {
		auto text = root.read(file);
		if (!text)
			continue;
		toml::table config = parse_toml(*text, root.shown(file));
		if (at(config, handler))
			throw InputError(root.shown(file) + ": the runtime handler '" + s.handler +
					 "' exists already: left alone; choose another with --handler");
		if (auto name = at(config, {"crio", "runtime", "default_runtime"}).value<std::string>())
			default_runtime = *name;
		if (const toml::table *runtimes = at(config, crio_runtimes).as_table())
			for (auto &&[name, table] : *runtimes)
				if (auto r = View(&table)["runtime_root"].value<std::string>())
					roots[std::string(name.str())] = *r;
	}
	std::string runtime_root;
	if (roots.count(default_runtime)) {
		runtime_root = roots[default_runtime];
	} else {
		std::string runtime = s.runtime.value_or(
			root.executable("/usr/bin/runc") || root.executable("/usr/sbin/runc") ? "runc"
											      : "crun");
		runtime_root = "/run/" + runtime.substr(runtime.rfind('/') + 1);
	}
	std::string body = "# The runtime handler \"" + s.handler +
			   "\" (a RuntimeClass with handler: " + s.handler +
			   "): vmm-cgroup-runtime runs the real\n# runtime and adds the hooks. Written by "
			   "vmm-cgroup-install, do not edit inside this block;\n# " +
			   uninstall_hint(s) + "\n";
	body += "[" + dotted(handler) + "]\n";
	body += "runtime_path = " + toml_quote(s.wrapper) + "\n";
	body += "runtime_type = \"oci\"\n";
	body += "runtime_root = " + toml_quote(runtime_root) + "\n";
	std::string current = existing.value_or(dropin_header("crio"));
	toml::table base = parse_toml(without_block(current, tag_of(s), what), what);
	if (at(base, handler))
		throw InputError(what + ": the runtime handler '" + s.handler +
				 "' exists outside its block: left alone");
	std::string result_text = put_block(current, tag_of(s), body, what);
	toml::table result = parse_toml(result_text, what + " (as edited)");
	check_only_added(base, result, handler, what);
	if (at(result, handler)["runtime_path"].value<std::string>() != s.wrapper)
		throw HostError(what +
				": the edited file does not have the handler as written (not written)");
	if (result_text != current || !existing)
		plan.changes.push_back({ours, result_text, false, "runtime handler '" + s.handler + "'"});
	if (!plan.changes.empty())
		plan.notes.push_back(
			"reload CRI-O (SIGHUP re-reads the runtime handlers): systemctl reload crio");
	plan_runtime_json_install(root, s, d, plan);
}

// ------------------------------------------------------------------------------------------------------
// podman

void podman_opt_in_note(const HostRoot &root, const Defaults &d, Plan &plan)
{
	std::string opt_in = "runtime";
	if (auto text = root.read(d.hooks_config)) {
		try {
			auto doc = nlohmann::json::parse(*text);
			if (doc.is_object() && doc.contains("opt_in") && doc["opt_in"].is_string())
				opt_in = doc["opt_in"].get<std::string>();
		} catch (const nlohmann::json::parse_error &) {
			plan.notes.push_back("warning: " + root.shown(d.hooks_config) + " is not valid JSON");
			return;
		}
	}
	if (opt_in != "annotation")
		plan.notes.push_back(
			"note: podman runs the hooks for containers annotated io.vmm-cgroup-hooks.enable="
			"true, and they act on them only with \"opt_in\": \"annotation\" in " +
			d.hooks_config + " (or run such containers with --runtime " + "<the wrapper>)");
}

void plan_podman(const HostRoot &root, const Settings &s, const Defaults &d, Plan &plan)
{
	if (s.runtime || s.hook_config)
		throw InputError(
			"--runtime and --hook-config are for containerd and crio: podman reads the hook "
			"files "
			"(for the wrapper route, `podman --runtime <the wrapper>` with runtime.json)");
	const std::string main =
		s.engine_config.empty() ? default_engine_config(Engine::podman) : s.engine_config;
	const std::string ours = podman_dropin(main);
	const std::string what = root.shown(ours);
	const std::string tag = "hooks_dir";
	auto existing = root.read(ours);
	std::string remaining = existing ? without_block(*existing, tag, what) : std::string();
	if (existing)
		parse_toml(remaining, what + " (as edited)");
	auto drop_ours = [&](const std::string &why) {
		if (!existing || remaining == *existing)
			return;
		if (has_block(remaining) || remaining != dropin_header("podman"))
			plan.changes.push_back({ours, remaining, false, why});
		else
			plan.changes.push_back({ours, std::nullopt, false, why});
	};
	if (s.action == Action::uninstall) {
		drop_ours("removed");
		return;
	}
	// podman's hooks_dir: containers.conf (the distribution's, then /etc's), then the drop-ins; the last
	// one that sets it wins, and without any the default directory applies.
	std::vector<std::string> files = {"/usr/share/containers/containers.conf", main};
	for (const auto &name : root.list(dir_of(ours), ".conf"))
		if (dir_of(ours) + "/" + name != ours)
			files.push_back(dir_of(ours) + "/" + name);
	std::vector<std::string> hooks_dirs = {"/usr/share/containers/oci/hooks.d"};
	for (const auto &file : files) {
		auto text = root.read(file);
		if (!text)
			continue;
		toml::table config = parse_toml(*text, root.shown(file));
		if (const toml::array *dirs = at(config, {"engine", "hooks_dir"}).as_array()) {
			hooks_dirs.clear();
			for (const auto &dir : *dirs)
				if (auto value = dir.value<std::string>())
					hooks_dirs.push_back(*value);
		}
	}
	if (root.list(s.hooks_d, ".json").empty())
		plan.notes.push_back("warning: no hook files in " + root.shown(s.hooks_d));
	podman_opt_in_note(root, d, plan);
	if (std::find(hooks_dirs.begin(), hooks_dirs.end(), s.hooks_d) != hooks_dirs.end()) {
		drop_ours("removed (podman reads " + s.hooks_d + " without it)");
		plan.notes.push_back("podman reads " + s.hooks_d + " already: nothing to change");
		return;
	}
	hooks_dirs.push_back(s.hooks_d);
	std::string list;
	for (const auto &dir : hooks_dirs)
		list += (list.empty() ? "" : ", ") + toml_quote(dir);
	std::string body = "# podman's hook directories, with the one of vmm-cgroup-hooks last.\n# " +
			   uninstall_hint(s) + "\n[engine]\nhooks_dir = [" + list + "]\n";
	std::string current = existing.value_or(dropin_header("podman"));
	toml::table base = parse_toml(remaining.empty() ? current : remaining, what);
	if (at(base, {"engine", "hooks_dir"}))
		throw InputError(what + ": sets engine.hooks_dir outside its block: left alone");
	std::string result_text = put_block(current, tag, body, what);
	toml::table result = parse_toml(result_text, what + " (as edited)");
	check_only_added(base, result, {"engine", "hooks_dir"}, what);
	if (result_text != current || !existing)
		plan.changes.push_back({ours, result_text, false, "hooks_dir with " + s.hooks_d});
}

// Whether a registration that uses runtime.json remains on the host once the plan is carried out.
bool wrapper_registered_after(const HostRoot &root, const Settings &s, const Plan &plan)
{
	std::vector<std::string> containerd = {default_engine_config(Engine::containerd)};
	std::vector<std::string> crio = {default_engine_config(Engine::crio)};
	if (!s.engine_config.empty())
		(s.engine == Engine::containerd ? containerd : crio).push_back(s.engine_config);
	std::vector<std::string> paths;
	for (const auto &main : containerd) {
		paths.push_back(main);
		paths.push_back(containerd_dropin(main));
	}
	for (const auto &main : crio)
		paths.push_back(crio_dropin(main));
	for (const std::string &path : paths) {
		std::optional<std::string> text = root.read(path);
		for (const auto &change : plan.changes)
			if (change.path == path)
				text = change.text;
		if (text && has_block(*text))
			return true;
	}
	return false;
}

} // namespace

std::string default_engine_config(Engine engine)
{
	switch (engine) {
	case Engine::containerd:
		return "/etc/containerd/config.toml";
	case Engine::crio:
		return "/etc/crio/crio.conf";
	case Engine::podman:
		return "/etc/containers/containers.conf";
	}
	return {};
}

std::string containerd_dropin(const std::string &main_config)
{
	return dir_of(main_config) + "/conf.d/50-vmm-cgroup-hooks.toml";
}

std::string crio_dropin(const std::string &main_config)
{
	return dir_of(main_config) + "/crio.conf.d/50-vmm-cgroup-hooks.conf";
}

std::string podman_dropin(const std::string &main_config)
{
	return dir_of(main_config) + "/containers.conf.d/50-vmm-cgroup-hooks.conf";
}

bool valid_handler(const std::string &name)
{
	if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-')
		return false;
	return std::all_of(name.begin(), name.end(), [](char c) {
		return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
	});
}

Plan plan(const HostRoot &root, const Settings &settings, const Defaults &defaults)
{
	if (!valid_handler(settings.handler))
		throw InputError(
			"--handler '" + settings.handler +
			"': must be a DNS label (a-z, 0-9, '-', at most 63), as a RuntimeClass handler is");
	for (const auto *path : {&settings.hook_dir, &settings.wrapper, &settings.hooks_d})
		if (!is_clean_absolute(*path))
			throw InputError("'" + *path + "': not a clean absolute path");
	if (!settings.engine_config.empty() && !is_clean_absolute(settings.engine_config))
		throw InputError("--engine-config '" + settings.engine_config +
				 "': not a clean absolute path");
	Plan out;
	switch (settings.engine) {
	case Engine::containerd:
		plan_containerd(root, settings, defaults, out);
		break;
	case Engine::crio:
		plan_crio(root, settings, defaults, out);
		break;
	case Engine::podman:
		plan_podman(root, settings, defaults, out);
		break;
	}
	if (settings.action == Action::install && settings.engine != Engine::podman &&
	    !root.executable(settings.wrapper))
		out.notes.push_back("warning: " + root.shown(settings.wrapper) +
				    " is not an executable file yet");
	if (settings.action == Action::uninstall && settings.engine != Engine::podman &&
	    !wrapper_registered_after(root, settings, out))
		plan_runtime_json_uninstall(root, defaults, out);
	if (settings.action == Action::uninstall && out.changes.empty())
		out.notes.push_back("nothing of vmm-cgroup-hooks is registered with " +
				    engine_name(settings.engine));
	return out;
}

std::vector<std::string> apply(const HostRoot &root, const Plan &plan)
{
	std::vector<std::string> said;
	for (const auto &change : plan.changes) {
		auto current = root.read(change.path);
		if (change.backup && current) {
			const std::string backup = change.path + backup_suffix;
			if (!root.exists(backup)) {
				root.write(backup, *current, root.mode(change.path).value_or(0644));
				said.push_back(root.shown(backup) + ": the original, kept");
			}
		}
		if (change.text) {
			if (current == change.text)
				continue;
			root.write(change.path, *change.text);
		} else if (!root.remove(change.path)) {
			continue;
		}
		said.push_back(root.shown(change.path) + ": " + change.what);
	}
	for (const auto &dir : plan.dirs_to_rm)
		if (root.remove_dir_if_empty(dir))
			said.push_back(root.shown(dir) + ": removed (empty)");
	if (said.empty() && !plan.changes.empty())
		said.push_back("nothing to change: already as wanted");
	said.insert(said.end(), plan.notes.begin(), plan.notes.end());
	return said;
}

} // namespace vmmcg::install
