"""What a training run writes: a plain-text log and TensorBoard scalars and images (when
tensorboard is installed). Only the main process logs; on the others every method does nothing."""
import os

from tqdm import tqdm


class RunLogger:
    def __init__(self, save_path, enabled):
        self.enabled = enabled
        self.log_path = os.path.join(save_path, 'log.txt')
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter  # imported here: slow, and main process only
                self.writer = SummaryWriter(os.path.join(save_path, 'tensorboard'))
            except ImportError:  # optional (requirements-dev.txt)
                self.log("tensorboard is not installed: log.txt only (pip install tensorboard for its curves)")

    def log(self, text):
        if self.enabled:
            tqdm.write(text)
            with open(self.log_path, 'a') as f:
                f.write(text + '\n')

    def scalars(self, values, step):
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)
            self.writer.flush()

    def image(self, tag, img, step):
        """img: (3, H, W) float in [0, 1]."""
        if self.writer is not None:
            self.writer.add_image(tag, img.clamp(0, 1), step)
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
