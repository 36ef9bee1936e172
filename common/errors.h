// The error model: exceptions end a hook, with the context of each layer in the message; main reports them
// once (hook.cpp), each as one line, and maps them to the exit code.
//  - InputError: what the hook was given is wrong (state, config.json, configuration, annotations,
//    arguments). One line names the field and the problem. Exit code 2.
//  - std::system_error: the host refused something (a cgroup write, a /proc read). Exit code 1.
//  - HostError: the host is not as it must be, without an errno (a corrupt record, a VMM outside the
//    container's cgroups). Exit code 1.
// Outcomes a caller expects (ENOENT on removal, ESRCH for an exited thread) are std::error_code returns,
// tested for explicitly where they are expected; a QMP peer that does not answer is a QmpError (qmp.h),
// caught by the one caller that falls back to thread names.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace vmmcg {

class InputError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

class HostError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_errno(const std::string &what, int err = errno)
{
	throw std::system_error(err, std::generic_category(), what);
}

inline std::error_code errno_code(int err = errno)
{
	return {err, std::generic_category()};
}

} // namespace vmmcg
