// Runs a function at scope exit unless release() was called: the rollback of a half-built state.
#pragma once

#include <utility>

namespace vmmcg {

template <typename F>
class ScopeExit
{
public:
	explicit ScopeExit(F func) : func_(std::move(func)) {}
	ScopeExit(const ScopeExit &) = delete;
	ScopeExit &operator=(const ScopeExit &) = delete;
	~ScopeExit()
	{
		if (active_)
			func_();
	}

	void release() { active_ = false; }

private:
	F func_;
	bool active_ = true;
};

} // namespace vmmcg
