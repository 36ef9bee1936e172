// The poststart hook: reads the OCI state on standard input; see common/hook.h.
#include "hook.h"

int main(int argc, char **argv)
{
	return vmmcg::run_hook(vmmcg::Stage::poststart, argc, argv);
}
