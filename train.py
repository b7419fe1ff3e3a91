"""Train a model from a YAML config (official LIIF keys; README.md, Training), alone or with torchrun.
`Run` is what the loop works on, set up by concern and checked before the run folder is made; then
the loop, as the official train_liif.py: per epoch train_epoch, validate, save."""
import math
import os
import sys
import time
import warnings

import torch
import torch.nn.functional as F
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from datasets.device_synthesis import to_device
from datasets.loading import make_loader, make_sr_dataset, use_lr_on_device
from models.checkpoint import (apply_init_weights, load_checkpoint, make_model, model_from_spec, read_init_weights,
                               save_checkpoint)
from models.evaluate import parse_eval_type, preview, sampled_psnr, score_image
from utils import dist, rng
from utils.config import ConfigError, get_key, load_config
from utils.data_norm import DataNorm
from utils.device import resolve_device
from utils.ema import EMA
from utils.errors import ArgumentParser, exit_on_user_error, number_arg
from utils.files import atomic_write
from utils.logger import RunLogger
from utils.metrics import psnr
from utils.optim import check_optimizer, make_optimizer, make_scheduler
from utils.speedups import SpeedUps
from utils.training import (TimeLimit, check_count, check_finite, check_freeze, parse_duration, prepare_run_folder, restore_rng,
                            resume_changes, resume_point, set_frozen, train_step)

LOSS_CHECK_EVERY = 20   # iterations between loss read-backs (each one waits for the GPU)
PRECISIONS = ('fp32', 'bf16')  # fp16 would need loss scaling


def parse_args(argv=None):
    p = ArgumentParser(prog='train.py', description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='YAML training config')
    p.add_argument('--name', help="run folder name under --save-dir (default: '_' + config file name)")
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config value, e.g. --set epoch_max=2 (repeatable; +KEY=VALUE adds a key)')
    p.add_argument('--resume', action='store_true',
                   help="continue the run from its folder's epoch-last.pth (a run without one yet starts "
                        "from the beginning)")
    p.add_argument('--save-dir', default='save', help='parent folder of run folders (default: save)')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'],
                   help='auto (default): cuda when available, else cpu; torchrun: one GPU per process')
    p.add_argument('--time-limit', type=parse_duration, metavar='T',
                   help="stop after the last epoch that ends within T (e.g. 540, 9m, 2h) from the start; "
                        "--resume continues the run (for time-limited jobs)")
    p.add_argument('--stop-after', type=number_arg(1, kind=int), metavar='EPOCH', help='stop after this epoch; --resume continues the run')
    return p.parse_args(argv)


class Run:
    def __init__(self, args):
        self.cfg = cfg = load_config(args.config, args.set)
        self.info = dist.setup(resolve_device(args.device))
        self.device, self.precision, self.seed = self.info.device, cfg.get('precision', 'fp32'), cfg.get('seed', 0)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if cfg.get('threads') is not None:  # a small model on cores that other work shares runs far faster on one
            torch.set_num_threads(check_count(cfg['threads'], 'threads'))
        self.speed = SpeedUps.from_config(cfg, self.device)
        self.save_path = os.path.join(args.save_dir, args.name or '_' + os.path.splitext(os.path.basename(args.config))[0])
        self.norm = DataNorm(cfg.get('data_norm'), self.device)
        self.epoch_max, self.bicubic = check_count(get_key(cfg, 'epoch_max'), 'epoch_max'), {}
        self.load_data()
        # the start: this run's last checkpoint (--resume), another run's (config `resume`), or none
        resuming = resume_point(self.save_path, args.resume)
        self.start = resuming or cfg.get('resume')
        check_optimizer(get_key(cfg, 'optimizer'))
        ckpt = load_checkpoint(self.start) if self.start else None
        changes = resume_changes(ckpt.get('config'), cfg) if resuming and ckpt.get('config') else []
        self.build_model(ckpt, args.config)
        notes = [prepare_run_folder(self.save_path, args.resume, self.info)]
        self.log = RunLogger(self.save_path, self.info.is_main)
        if self.info.is_main:
            text = yaml.safe_dump(cfg, sort_keys=False).encode()
            atomic_write(os.path.join(self.save_path, 'config.yaml'), lambda f: f.write(text))
        notes += self.build_optimiser(ckpt) + [f"config changed on resume: {line}" for line in changes]
        for note in filter(None, notes + self.model_notes() + self.speed.notes):
            self.log.log(note)

    def load_data(self):
        """The data sets and loaders; the config's batch_size is the global batch, split across processes."""
        cfg, workers = self.cfg, self.cfg.get('num_workers')
        self.train_set = make_sr_dataset(cfg, 'train_dataset', self.seed)
        self.val_set = make_sr_dataset(cfg, 'val_dataset', self.seed) if cfg.get('val_dataset') else None
        self.val_full = make_sr_dataset(cfg, 'val_full', self.seed) if cfg.get('val_full') else None
        self.lr_on_device = use_lr_on_device(cfg.get('lr_on_device', 'auto'), self.train_set, self.device)
        self.train_loader = make_loader(self.train_set, cfg, 'train_dataset', self.info, self.seed, True, workers)
        self.val_loader = make_loader(self.val_set, cfg, 'val_dataset', self.info, self.seed, False, workers) \
            if self.val_set else None
        self.eval_type, self.eval_bsize = cfg.get('eval_type'), cfg.get('eval_bsize')
        parse_eval_type(self.eval_type)  # the official keys: val_dataset's (LR, HR) pairs scored as whole images
        if self.eval_bsize is not None:
            check_count(self.eval_bsize, 'eval_bsize', 'a positive number of queries')
        if cfg.get('epoch_val') and (self.val_set or self.val_full):
            self.norm.scalars()  # whole-image scoring and previews need one sub/div: fail now, not at the first validation

    def build_model(self, ckpt, config_path):
        """The checkpoint's model, or the config's (with its init_weights), and what of it trains; every
        process starts from the same weights."""
        rng.seed_all(self.seed)
        if self.cfg.get('deterministic'):  # deterministic kernels only (GPUs: slower, and cuBLAS needs this workspace)
            os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
            torch.use_deterministic_algorithms(True)
        self.model_spec = ckpt['model'] if ckpt else get_key(self.cfg, 'model')
        self.model = model_from_spec(self.model_spec, self.start) if ckpt else make_model(self.model_spec, config_path)
        self.init = None if self.start else self.cfg.get('init_weights')
        if self.init:
            apply_init_weights(self.model, read_init_weights(self.init), self.init['path'])
        with torch.no_grad():  # a model that does not decode RGB (e.g. LIIF with imnet_spec null) cannot train here
            channels = self.model.eval()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 2), torch.full((1, 1, 2), 0.25)).shape[-1]
        if channels != 3:
            raise ConfigError(f"model: decodes {channels} values a query, not the 3 of RGB (an imnet_spec null?)")
        self.trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
        self.freeze = check_freeze(self.cfg.get('freeze'), self.trainable)

    def build_optimiser(self, ckpt):
        """Optimizer, EMA, schedule (replayed under this config up to where the run stopped) and random
        states, from the checkpoint when there is one; returns the lines to log."""
        cfg = self.cfg
        self.model = self.speed.prepare(self.model.to(self.device))
        self.optimizer = make_optimizer(self.model.parameters(), cfg['optimizer'])
        self.ema = EMA(self.model, get_key(cfg, 'ema.decay')) if cfg.get('ema') else None
        self.epoch_start, self.iteration, self.best = 1, 0, -math.inf
        if ckpt:
            if 'optimizer' in ckpt:
                self.optimizer.load_state_dict(ckpt['optimizer']['sd'])
                for group in self.optimizer.param_groups:  # the config's lr: the schedule starts from it
                    group['lr'] = (cfg['optimizer'].get('args') or {}).get('lr', group['lr'])
                    group.pop('initial_lr', None)
            self.epoch_start, self.iteration = ckpt.get('epoch', 0) + 1, ckpt.get('iteration', 0)
            self.best = ckpt.get('best', self.best)
            if self.ema is not None and 'ema' in ckpt:
                self.ema.load_state_dict(ckpt['ema'])
        self.scheduler, self.lr_per_iteration = make_scheduler(self.optimizer, cfg, len(self.train_loader))
        if self.scheduler is not None:
            with warnings.catch_warnings():  # "step() before optimizer.step()": intended here
                warnings.simplefilter('ignore')
                for _ in range(self.iteration if self.lr_per_iteration else self.epoch_start - 1):
                    self.scheduler.step()
        rng.seed_all(self.seed + self.info.rank)
        rng_note = restore_rng(ckpt['rng'], self.info) if ckpt and 'rng' in ckpt else None
        set_frozen(self.model, self.freeze, self.epoch_start, self.trainable)
        self.wrap_step_model()
        return [ckpt and f"resumed from {self.start} (epoch {self.epoch_start - 1}, iteration {self.iteration})",
                rng_note]

    def wrap_step_model(self):
        """What the training step calls: the model, wrapped for DDP (which syncs the parameters that
        train when it is made) and compiled when asked."""
        model = self.model
        if self.info.world_size > 1:
            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        self.step_model = self.speed.wrap(model)

    def model_notes(self):
        return ([f"initialised {', '.join(self.init['modules'])} from {self.init['path']}"] if self.init else []) + [
            f"{module} frozen until the end of epoch {epochs}" for module, epochs in self.freeze.items()
            if self.epoch_start <= epochs] + [
            f"model {self.model_spec['name']}: {sum(p.numel() for p in self.model.parameters()):,} parameters; "
            f"{self.info.world_size} process(es) on {self.device.type}, global batch "
            f"{self.cfg['train_dataset']['batch_size']}, {len(self.train_loader)} iterations/epoch"
            + (", LR made on the device" if self.lr_on_device else '') + f"; speed-ups: {self.speed.describe()}"]


def train_epoch(run, epoch):
    """One pass over the training data; returns the mean loss."""
    run.train_loader.sampler.set_epoch(epoch)
    run.step_model.train()
    batches = len(run.train_loader)
    losses, loss_sum, loss_count = [], 0.0, 0
    bar = tqdm(run.train_loader, desc=f'epoch {epoch}/{run.epoch_max}', leave=False, disable=not run.info.is_main)
    for i, batch in enumerate(bar):
        batch = to_device(batch, run.device, run.train_set.inp_size if run.lr_on_device else None)
        losses.append(train_step(run.step_model, run.optimizer, batch, run.norm, run.precision, run.speed,
                                 run.cfg.get('grad_clip')))
        if run.lr_per_iteration:
            run.scheduler.step()
        if run.ema is not None:
            run.ema.update(run.model)
        run.iteration += 1
        if len(losses) == LOSS_CHECK_EVERY or i + 1 == batches:
            values = check_finite(losses, run.iteration, epoch, run.save_path, run.info)
            loss_sum, loss_count, losses = loss_sum + sum(values), loss_count + len(values), []
            bar.set_postfix(loss=f'{loss_sum / loss_count:.4f}', refresh=False)
    if run.scheduler is not None and not run.lr_per_iteration:
        run.scheduler.step()
    return loss_sum / max(loss_count, 1)


def whole_image_psnr(run, dataset, eval_type, model=None):
    """Mean PSNR of `model`'s SR of `dataset`'s whole images (each process scores its share), or
    without a model of torch's bicubic upscaling, the baseline a model must beat."""
    shave, y_channel = parse_eval_type(eval_type)
    psnrs = [score_image(model, lr, hr, eval_type, run.norm, run.device, run.precision, chunk=run.eval_bsize)[0]['psnr']
             if model is not None else psnr(F.interpolate(lr[None], hr.shape[-2:], mode='bicubic', align_corners=False)
                                            [0].clamp(0, 1), hr, shave=shave, y_channel=y_channel)
             for lr, hr in map(dataset.pair, range(run.info.rank, len(dataset), run.info.world_size))]
    total, count = dist.all_sum([sum(psnrs), len(psnrs)], run.info)
    return total / count


def validate(run, epoch):
    """({'val/psnr': ..., 'val/full_psnr': ...}, the log line's text) for what the config validates
    on. val_dataset: PSNR on sampled query pixels (the official validation), or on whole images with
    eval_type; val_full: whole images, watched only. Whole images are logged beside bicubic."""
    eval_model = run.ema.model if run.ema is not None else run.model
    scores, text = {}, ''
    if run.val_loader and run.eval_type is None:
        total, count = dist.all_sum(list(sampled_psnr(eval_model, run.val_loader, run.norm, run.device,
                                                      run.precision)), run.info)
        scores['val/psnr'] = total / count
        text += f", val psnr {scores['val/psnr']:.4f}"
    for key, dataset, eval_type in (('val/psnr', run.val_set if run.eval_type else None, run.eval_type),
                                    ('val/full_psnr', run.val_full, (run.cfg.get('val_full') or {}).get('eval_type'))):
        if dataset is not None:
            if key not in run.bicubic:
                run.bicubic[key] = whole_image_psnr(run, dataset, eval_type)
            scores[key] = whole_image_psnr(run, dataset, eval_type, eval_model)
            text += (f", {'val' if key == 'val/psnr' else eval_type or 'full-image'} psnr {scores[key]:.4f} "
                     f"(bicubic {run.bicubic[key]:.4f}, {scores[key] - run.bicubic[key]:+.2f} dB)")
    if run.info.is_main:
        run.log.image('val/lr_sr_hr', preview(eval_model, run.val_full or run.val_set, run.norm, run.device), epoch)
    return scores, text


def save(run, epoch, improved):
    """epoch-best (when validation improved), then epoch-last: a kill in between leaves a last
    checkpoint that redoes this epoch; epoch-N every epoch_save epochs."""
    rng_states = dist.all_gather(rng.get_state(), run.info)
    if not run.info.is_main:
        return
    cfg = run.cfg
    state = dict(optimizer_spec=cfg['optimizer'], optimizer=run.optimizer, epoch=epoch, iteration=run.iteration,
                 best=run.best, scheduler=run.scheduler.state_dict() if run.scheduler else None,
                 ema=run.ema.state_dict() if run.ema else None, rng=rng_states, config=cfg,
                 data_norm=run.norm.effective())
    names = (['epoch-best.pth'] if improved else []) + ['epoch-last.pth']
    if cfg.get('epoch_save') and epoch % cfg['epoch_save'] == 0:
        names.append(f'epoch-{epoch}.pth')
    for file_name in names:
        save_checkpoint(os.path.join(run.save_path, file_name), run.model_spec, run.model, **state)


def train(args):
    start_time = time.time()
    run = Run(args)
    time_limit = TimeLimit(args.time_limit, start_time, run.info)
    epoch_val = run.cfg.get('epoch_val')
    if run.epoch_start > run.epoch_max:
        run.log.log(f"nothing to train: {run.save_path} has done all {run.epoch_max} epochs (epoch_max); "
                    f"--resume --set epoch_max=N trains it further")
    for epoch in range(run.epoch_start, run.epoch_max + 1):
        t0 = time.time()
        if set_frozen(run.model, run.freeze, epoch, run.trainable):
            run.wrap_step_model()
            thawed = [module for module, epochs in run.freeze.items() if epochs == epoch - 1]
            run.log.log(f"epoch {epoch}: {', '.join(thawed)} trained from now on (frozen until now)")
        lr = run.optimizer.param_groups[0]['lr']
        loss = train_epoch(run, epoch)
        its = len(run.train_loader) / (time.time() - t0)
        scalars = {'loss': loss, 'lr': lr, 'iterations_per_s': its}
        line = f"epoch {epoch}/{run.epoch_max}, lr {lr:.3e}, train loss {loss:.4f}, {its:.2f} it/s"
        improved = False
        if epoch_val and epoch % epoch_val == 0 and (run.val_loader or run.val_full):
            scores, text = validate(run, epoch)
            scalars.update(scores)
            line += text
            if 'val/psnr' in scores:
                improved, run.best = scores['val/psnr'] > run.best, max(run.best, scores['val/psnr'])
        run.log.scalars(scalars, epoch)
        run.log.log(line + f", {time.time() - t0:.1f} s")
        save(run, epoch, improved)
        if epoch < run.epoch_max and args.stop_after and epoch >= args.stop_after:
            run.log.log(f"stopped after epoch {epoch}/{run.epoch_max} (--stop-after); --resume continues")
            break
        if epoch < run.epoch_max and time_limit.reached(time.time() - t0):
            run.log.log(f"time limit: stopped after epoch {epoch}/{run.epoch_max}, {time.time() - start_time:.0f} s "
                        f"from the start (another epoch would end past the limit); --resume continues")
            break
    else:
        last = os.path.join(run.save_path, 'epoch-last.pth')
        run.log.log(f"done: {run.save_path}. Its model: {last} (epoch-best.pth: the best val psnr); try it with\n"
                    f"  python demo.py --input load/samples/coffee.png --scale 4 --model {last}\n"
                    f"  python test.py --model {last} --suite benchmark   # needs the data sets, README.md Data")
    run.log.close()


def main(argv=None):
    try:
        exit_on_user_error('train.py', train, parse_args(argv))
    except KeyboardInterrupt:
        print("train.py: interrupted; the run folder's epoch-last.pth is intact (--resume continues)", file=sys.stderr)
        sys.exit(130)
    finally:
        dist.cleanup()


if __name__ == '__main__':
    main()
