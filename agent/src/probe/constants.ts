/**
 * Fixed values of the machine probe: external commands, time limits, sysfs locations and the
 * rounding applied to every advertised figure.
 */

/** The NVIDIA management CLI, looked up on PATH. */
export const NVIDIA_SMI_COMMAND = 'nvidia-smi'

/** One CSV line per GPU: `name, memory.total (MiB), utilization.gpu (%)`. */
export const NVIDIA_SMI_ARGS: readonly string[] = [
  '--query-gpu=name,memory.total,utilization.gpu',
  '--format=csv,noheader,nounits'
]

/** Longest a GPU query command may run before it is killed and treated as absent. */
export const GPU_COMMAND_TIMEOUT_MS = 2_000

/** Extra wait after the timeout for the killed child's pipes to close before giving up on it. */
export const GPU_COMMAND_KILL_GRACE_MS = 500

/** Output cap for a GPU query command (a few lines per GPU). */
export const GPU_COMMAND_MAX_BUFFER = 64 * 1024

/** Linux DRM class directory: one `cardN` entry per display/compute device. */
export const DRM_CLASS_DIR = '/sys/class/drm'

/** PCI vendor id of AMD / ATI, as written in `device/vendor`. */
export const AMD_PCI_VENDOR_ID = '0x1002'

/** Model reported for an AMD card whose `device/product_name` is absent or empty. */
export const AMD_DEFAULT_MODEL = 'AMD GPU'

export const GPU_VENDOR_NVIDIA = 'nvidia'
export const GPU_VENDOR_AMD = 'amd'
export const GPU_VENDOR_APPLE = 'apple'

/** Bytes per GiB; every `*_gb` figure is in GiB. */
export const BYTES_PER_GIB = 2 ** 30

/** MiB per GiB (nvidia-smi reports memory in MiB). */
export const MIB_PER_GIB = 1024

/** Every advertised figure (GiB, percent) is rounded to a multiple of this step. */
export const ROUNDING_STEP = 0.1
