// gpu_clock.c: the clocks a device runs at now, from NVML, opened at run time (dlopen of libnvidia-ml.so.1, which
// the NVIDIA driver installs), so normtweak neither links nor needs NVML's headers: the four entry points are
// declared here by their documented C signatures. Built with or without CUDA (without, there is no device to ask).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

#include "gpu.h"

typedef void *nvml_device;               // nvmlDevice_t, an opaque handle
enum { NVML_OK = 0, NVML_SM = 1, NVML_MEM = 2 }; // nvmlReturn_t success; nvmlClockType_t: NVML_CLOCK_SM, _MEM

typedef struct {
    int tried, ok;
    int (*init)(void);
    int (*by_pci)(const char *bus_id, nvml_device *dev);
    int (*clock)(nvml_device dev, int type, unsigned *mhz);
    const char *(*error)(int rc);
} nvml_api;

static nvml_api g_nvml;

static int nvml_open(nt_err *err) {
    if (g_nvml.tried) return g_nvml.ok ? 0 : nt_fail(err, "NVML is not available");
    g_nvml.tried = 1;
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) return nt_fail(err, "NVML is not available (%s)", dlerror());
    *(void **)&g_nvml.init = dlsym(h, "nvmlInit_v2");
    *(void **)&g_nvml.by_pci = dlsym(h, "nvmlDeviceGetHandleByPciBusId_v2");
    *(void **)&g_nvml.clock = dlsym(h, "nvmlDeviceGetClockInfo");
    *(void **)&g_nvml.error = dlsym(h, "nvmlErrorString");
    if (!g_nvml.init || !g_nvml.by_pci || !g_nvml.clock || !g_nvml.error)
        return nt_fail(err, "NVML (libnvidia-ml.so.1) lacks nvmlInit_v2, nvmlDeviceGetHandleByPciBusId_v2 or "
                            "nvmlDeviceGetClockInfo");
    int rc = g_nvml.init();
    if (rc != NVML_OK) return nt_fail(err, "nvmlInit: %s", g_nvml.error(rc));
    g_nvml.ok = 1;
    return 0;
}

int nt_gpu_clocks_now(const nt_gpu_info *info, int *sm_mhz, int *mem_mhz, nt_err *err) {
    *sm_mhz = *mem_mhz = -1;
    if (!info || !info->pci_bus_id[0]) return nt_fail(err, "no device to ask NVML about");
    if (nvml_open(err)) return -1;
    nvml_device dev = NULL;
    int rc = g_nvml.by_pci(info->pci_bus_id, &dev);
    if (rc != NVML_OK) return nt_fail(err, "NVML: device %s: %s", info->pci_bus_id, g_nvml.error(rc));
    unsigned sm = 0, mem = 0;
    if ((rc = g_nvml.clock(dev, NVML_SM, &sm)) != NVML_OK || (rc = g_nvml.clock(dev, NVML_MEM, &mem)) != NVML_OK)
        return nt_fail(err, "NVML: clocks of %s: %s", info->pci_bus_id, g_nvml.error(rc));
    *sm_mhz = (int)sm;
    *mem_mhz = (int)mem;
    return 0;
}
