#include "spec_file.h"

#include <fcntl.h>
#include <unistd.h>

#include "errors.h"
#include "io.h"

namespace vmmcg::runtime {

namespace {

constexpr const char *spec_name = "config.json";

UniqueFd open_bundle_dir(const std::string &bundle)
{
	UniqueFd dir(::open(bundle.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!dir.valid()) {
		if (errno == ENOENT || errno == ENOTDIR)
			throw InputError("bundle " + bundle + ": " + std::generic_category().message(errno));
		throw_errno("opening bundle " + bundle);
	}
	return dir;
}

UniqueFd open_spec(const SpecFile &file)
{
	const std::string where = file.bundle + "/" + spec_name;
	UniqueFd fd(::openat(file.dir.get(), spec_name,
			     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
	if (!fd.valid()) {
		if (errno == ENOENT || errno == ELOOP)
			throw InputError(where + ": " + (errno == ELOOP ? "a symbolic link" : "missing"));
		throw_errno("opening " + where);
	}
	return fd;
}

std::string temp_name()
{
	return std::string(".") + spec_name + ".vmmcg-" + std::to_string(::getpid());
}

// Creates the temp file with the original's mode and owner. A leftover of a killed wrapper of the same pid
// is replaced.
UniqueFd create_temp(const SpecFile &file, const std::string &name)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	UniqueFd fd(::openat(file.dir.get(), name.c_str(), flags, 0600));
	if (!fd.valid() && errno == EEXIST && ::unlinkat(file.dir.get(), name.c_str(), 0) == 0)
		fd.reset(::openat(file.dir.get(), name.c_str(), flags, 0600));
	if (!fd.valid())
		throw_errno("creating " + file.bundle + "/" + name);
	if (::fchown(fd.get(), file.st.st_uid, file.st.st_gid) != 0 ||
	    ::fchmod(fd.get(), file.st.st_mode & 07777) != 0) {
		int err = errno;
		::unlinkat(file.dir.get(), name.c_str(), 0);
		throw_errno("setting the owner and mode of " + file.bundle + "/" + name, err);
	}
	return fd;
}

} // namespace

SpecFile read_spec_file(const std::string &bundle)
{
	SpecFile file;
	file.bundle = bundle;
	file.dir = open_bundle_dir(bundle);
	UniqueFd fd = open_spec(file);
	const std::string where = bundle + "/" + spec_name;
	if (::fstat(fd.get(), &file.st) != 0)
		throw_errno("fstat " + where);
	if (!S_ISREG(file.st.st_mode))
		throw InputError(where + ": not a regular file");
	file.text = read_fd_limited(fd.get(), max_spec_size, where);
	return file;
}

void replace_spec_file(const SpecFile &file, std::string_view text)
{
	const std::string name = temp_name();
	UniqueFd fd = create_temp(file, name);
	try {
		write_all(fd.get(), text, "writing " + file.bundle + "/" + name);
		if (::close(fd.release()) != 0)
			throw_errno("closing " + file.bundle + "/" + name);
		if (::renameat(file.dir.get(), name.c_str(), file.dir.get(), spec_name) != 0)
			throw_errno("renaming " + name + " over " + file.bundle + "/" + spec_name);
	} catch (...) {
		::unlinkat(file.dir.get(), name.c_str(), 0);
		throw;
	}
}

} // namespace vmmcg::runtime
