"""What the benchmark scripts share: the model under test, the machine's description, timing."""
import os
import platform
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

import datasets  # noqa: E402
import models  # noqa: E402
from models.checkpoint import load_model  # noqa: E402
from utils.config import load_config  # noqa: E402

DEFAULT_WEIGHTS = os.path.join(REPO, 'save', 'pretrained', 'edsr-baseline-liif.pth')  # the shipped model
SPEC = {'name': 'liif', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True}},
    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256, 256]}}}}
MiB = 2 ** 20
CPU = torch.device('cpu')


# --- setup --------------------------------------------------------------------------------

def get_model(weights, config=None):
    """(model in eval mode, description). With `config` (a configs/models/ file), that model with
    random weights (seed 0); else the checkpoint, or random weights of EDSR-baseline-LIIF if the
    file does not exist (timing and memory do not depend on the weights)."""
    if config:
        torch.manual_seed(0)
        return models.make(load_config(config)['model']).eval(), f'{config}, random weights'
    if weights and os.path.isfile(weights):
        return load_model(weights), f'checkpoint {weights}'
    torch.manual_seed(0)
    return models.make(SPEC).eval(), f'random weights, same architecture ({weights} not found)'


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    """The CPU features that matter for bf16 matmuls, as listed in /proc/cpuinfo."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((l.split(':', 1)[1].split() for l in f if l.startswith('flags')), [])
    except OSError:
        return '?'
    wanted = ['avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile']
    return ' '.join(w for w in wanted if w in flags) or 'none of avx2/avx512/amx'


def print_device(threads, device=CPU):
    if device.type == 'cuda':
        print(f'device : {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), host {cpu_name()}')
    else:
        print(f'device : {cpu_name()} ({platform.machine()}), {os.cpu_count()} logical CPUs, '
              f'features: {cpu_flags()}')
    print(f'torch  : {torch.__version__}, {threads} threads, '
          f'mkldnn {"on" if torch.backends.mkldnn.is_available() else "off"}, '
          f'python {platform.python_version()}')


def fmt_s(t):
    return f'{t * 1e3:8.1f} ms' if t < 1 else f'{t:8.2f} s '


def sync(device):
    """Wait for the device's queued work (timings of GPU work need it)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_time(fn, repeats, device=CPU, warmup=1):
    """Median seconds of `fn()` over `repeats` calls after `warmup` calls (GPU work synchronised)."""
    def once():
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - t0
    for _ in range(warmup):
        once()
    return statistics.median(once() for _ in range(repeats))


def paper_training_set(root, inp_size=48, sample_q=2304, repeat=100):
    """The paper's training wrapper (by default 48x48 LR, scale U(1, 4), augmentation, 2304
    queries) over the images of `root`, decoded into memory as for training."""
    inner = datasets.make({'name': 'image-folder', 'args': {'root_path': root, 'cache': 'in_memory', 'repeat': repeat}})
    return datasets.make({'name': 'sr-implicit-downsampled', 'args': {
        'inp_size': inp_size, 'scale_max': 4, 'augment': True, 'sample_q': sample_q}}, args={'dataset': inner})
