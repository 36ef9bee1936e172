// vmm-cgroupctl: the operator's command of vmm-cgroup-hooks (status, reconcile, gc); cli.h.
#include "cli.h"

int main(int argc, char **argv)
{
	return vmmcg::ctl::run_ctl(argc, argv);
}
