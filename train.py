"""Train a model from a YAML config (official LIIF keys).

    python train.py --config configs/train-div2k/train_edsr-baseline-liif.yaml [--name N] [--set k=v ...] [--resume] [--time-limit T]
    torchrun --nproc_per_node 4 train.py --config ...        # several GPUs (or CPU processes), one machine

Run folder: save/<name> (default '_' + config file name) with config.yaml, log.txt,
tensorboard/, epoch-last.pth (every epoch), epoch-N.pth (every epoch_save) and epoch-best.pth
(best validation PSNR on val_dataset).

The loop, as the official train_liif.py: prepare_training (config, data, model, optimizer,
schedule, resume), then per epoch train_epoch, validate and save.
"""
import argparse
import math
import os
import sys
import time
import warnings
from types import SimpleNamespace

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from datasets.device_synthesis import to_device
from datasets.loading import make_loader, make_sr_dataset, use_lr_on_device
import models
from models.checkpoint import apply_init_weights, load_checkpoint, model_from_spec, read_init_weights, save_checkpoint
from models.evaluate import parse_eval_type, preview, sampled_psnr, score_image
from utils import dist, rng
from utils.config import ConfigError, get_key, load_config
from utils.data_norm import DataNorm
from utils.device import resolve_device
from utils.ema import EMA
from utils.errors import exit_on_user_error
from utils.files import atomic_write
from utils.logger import RunLogger
from utils.optim import check_optimizer, make_optimizer, make_scheduler
from utils.speedups import SpeedUps
from utils.training import (TimeLimit, check_finite, check_freeze, parse_duration, prepare_run_folder, restore_rng,
                            resume_changes, resume_point, set_frozen, train_step)

LOSS_CHECK_EVERY = 20   # iterations between loss read-backs (each one waits for the GPU)
PRECISIONS = ('fp32', 'bf16')  # fp16 would need loss scaling


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
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
    p.add_argument('--stop-after', type=int, metavar='EPOCH', help='stop after this epoch; --resume continues the run')
    return p.parse_args(argv)


def prepare_training(args):
    """Everything the loop needs, checked before the run folder is made or changed."""
    cfg = load_config(args.config, args.set)
    info = dist.setup(resolve_device(args.device))
    device = info.device
    precision = cfg.get('precision', 'fp32')
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    speed = SpeedUps.from_config(cfg, device)
    name = args.name or '_' + os.path.splitext(os.path.basename(args.config))[0]
    save_path = os.path.join(args.save_dir, name)
    seed = cfg.get('seed', 0)
    norm = DataNorm(cfg.get('data_norm'), device)
    eval_type, eval_bsize = cfg.get('eval_type'), cfg.get('eval_bsize')

    # data: the config's batch_size is the global batch, split evenly across processes
    train_set = make_sr_dataset(cfg, 'train_dataset', seed)
    val_set = make_sr_dataset(cfg, 'val_dataset', seed) if cfg.get('val_dataset') else None
    val_full = make_sr_dataset(cfg, 'val_full', seed) if cfg.get('val_full') else None
    lr_on_device = use_lr_on_device(cfg.get('lr_on_device', 'auto'), train_set, device)
    train_loader = make_loader(train_set, cfg, 'train_dataset', info, seed, shuffle=True,
                               num_workers=cfg.get('num_workers'))
    val_loader = make_loader(val_set, cfg, 'val_dataset', info, seed, shuffle=False,
                             num_workers=cfg.get('num_workers')) if val_set else None
    if eval_type is not None:  # the official keys: val_dataset's (LR, HR) pairs scored as whole images
        parse_eval_type(eval_type)
    if eval_bsize is not None and not (isinstance(eval_bsize, int) and eval_bsize > 0):
        raise ConfigError(f"eval_bsize {eval_bsize!r}: expected a positive number of queries")
    if cfg.get('epoch_val') and (val_set or val_full):
        norm.scalars()  # whole-image scoring and previews need one sub/div: fail now, not at the first validation

    # resuming: the checkpoint's config against this one; a new run may start from other weights
    resuming = resume_point(save_path, args.resume)
    start = resuming or cfg.get('resume')
    check_optimizer(get_key(cfg, 'optimizer'))
    ckpt = load_checkpoint(start) if start else None
    changes = resume_changes(ckpt.get('config'), cfg) if resuming and ckpt.get('config') else []

    # the model, built before the run folder so that its spec, initial weights and frozen parts
    # are checked first; all processes start from the same weights
    rng.seed_all(seed)
    if cfg.get('deterministic'):  # deterministic kernels only (on a GPU: slower, and cuBLAS needs this workspace)
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True)
    model_spec = ckpt['model'] if ckpt else get_key(cfg, 'model')
    model = model_from_spec(model_spec, source=start) if ckpt else models.make(model_spec)
    if cfg.get('init_weights') and not start:
        apply_init_weights(model, read_init_weights(cfg['init_weights']), cfg['init_weights']['path'])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    freeze = check_freeze(cfg.get('freeze'), trainable)

    restart_note = prepare_run_folder(save_path, args.resume, info)
    log = RunLogger(save_path, info.is_main)
    if restart_note:
        log.log(restart_note)
    if info.is_main:
        text = yaml.safe_dump(cfg, sort_keys=False).encode()
        atomic_write(os.path.join(save_path, 'config.yaml'), lambda f: f.write(text))

    # optimizer, schedule, EMA
    model = speed.prepare(model.to(device))
    optimizer = make_optimizer(model.parameters(), get_key(cfg, 'optimizer'))
    ema = EMA(model, get_key(cfg, 'ema.decay')) if cfg.get('ema') else None
    epoch_start, iteration, best = 1, 0, -math.inf
    if ckpt:
        if 'optimizer' in ckpt:
            optimizer.load_state_dict(ckpt['optimizer']['sd'])
            for group in optimizer.param_groups:  # the config's lr: the schedule below starts from it
                group['lr'] = (cfg['optimizer'].get('args') or {}).get('lr', group['lr'])
                group.pop('initial_lr', None)
        epoch_start, iteration, best = ckpt.get('epoch', 0) + 1, ckpt.get('iteration', 0), ckpt.get('best', best)
        if ema is not None and 'ema' in ckpt:
            ema.load_state_dict(ckpt['ema'])
    scheduler, lr_per_iteration = make_scheduler(optimizer, cfg, len(train_loader))
    if scheduler is not None:  # replay this config's schedule up to where the run stopped
        with warnings.catch_warnings():  # "step() before optimizer.step()": intended here
            warnings.simplefilter('ignore')
            for _ in range(iteration if lr_per_iteration else epoch_start - 1):
                scheduler.step()
    if ckpt:
        log.log(f"resumed from {start} (epoch {epoch_start - 1}, iteration {iteration})")
        for line in changes:
            log.log(f"config changed on resume: {line}")
    rng.seed_all(seed + info.rank)
    if ckpt and 'rng' in ckpt:
        restore_rng(ckpt['rng'], info, log)

    if cfg.get('init_weights') and not start:
        log.log(f"initialised {', '.join(cfg['init_weights']['modules'])} from {cfg['init_weights']['path']}")
    set_frozen(model, freeze, epoch_start, trainable)
    for module, epochs in freeze.items():
        if epoch_start <= epochs:
            log.log(f"{module} frozen until the end of epoch {epochs}")
    log.log(f"model {model_spec['name']}: {sum(p.numel() for p in model.parameters()):,} parameters; "
            f"{info.world_size} process(es) on {device.type}, global batch {cfg['train_dataset']['batch_size']}, "
            f"{len(train_loader)} iterations/epoch" + (", LR made on the device" if lr_on_device else '')
            + f"; speed-ups: {speed.describe()}")
    for note in speed.notes:
        log.log(note)
    return SimpleNamespace(
        cfg=cfg, info=info, device=device, precision=precision, speed=speed, save_path=save_path, log=log,
        norm=norm, eval_type=eval_type, eval_bsize=eval_bsize, train_set=train_set, train_loader=train_loader,
        val_set=val_set, val_loader=val_loader, val_full=val_full, lr_on_device=lr_on_device, freeze=freeze,
        trainable=trainable,
        model_spec=model_spec, model=model, step_model=step_model(model, info, speed), optimizer=optimizer,
        scheduler=scheduler,
        lr_per_iteration=lr_per_iteration, ema=ema, epoch_start=epoch_start, epoch_max=get_key(cfg, 'epoch_max'),
        iteration=iteration, best=best)


def step_model(model, info, speed):
    """What the training step calls: the model, wrapped for DDP (which syncs the parameters that
    train when it is made) and compiled when asked."""
    if info.world_size > 1:
        model = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == 'cuda' else None)
    return speed.wrap(model)


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


def validate(run, epoch):
    """{'val/psnr': ..., 'val/full_psnr': ...} for what the config validates on (every process
    scores its share; the sums are shared). val_dataset: PSNR on sampled query pixels (the
    official validation), or on whole images with eval_type; val_full: whole images, watched only."""
    eval_model = run.ema.model if run.ema is not None else run.model
    scores = {}
    if run.val_loader and run.eval_type is None:
        total, count = dist.all_sum(list(sampled_psnr(eval_model, run.val_loader, run.norm, run.device,
                                                      run.precision)), run.info)
        scores['val/psnr'] = total / count
    for key, dataset, eval_type in (('val/psnr', run.val_set if run.eval_type else None, run.eval_type),
                                    ('val/full_psnr', run.val_full, (run.cfg.get('val_full') or {}).get('eval_type'))):
        if dataset is not None:
            psnrs = [score_image(eval_model, *dataset.pair(i), eval_type, run.norm, run.device, run.precision,
                                 chunk=run.eval_bsize)[0]['psnr']
                     for i in range(run.info.rank, len(dataset), run.info.world_size)]
            total, count = dist.all_sum([sum(psnrs), len(psnrs)], run.info)
            scores[key] = total / count
    if run.info.is_main:
        run.log.image('val/lr_sr_hr', preview(eval_model, run.val_full or run.val_set, run.norm, run.device), epoch)
    return scores


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
    run = prepare_training(args)
    time_limit = TimeLimit(args.time_limit, start_time, run.info)
    epoch_val = run.cfg.get('epoch_val')
    for epoch in range(run.epoch_start, run.epoch_max + 1):
        t0 = time.time()
        if set_frozen(run.model, run.freeze, epoch, run.trainable):
            run.step_model = step_model(run.model, run.info, run.speed)
            thawed = [module for module, epochs in run.freeze.items() if epochs == epoch - 1]
            run.log.log(f"epoch {epoch}: {', '.join(thawed)} trained from now on (frozen until now)")
        lr = run.optimizer.param_groups[0]['lr']
        loss = train_epoch(run, epoch)
        its = len(run.train_loader) / (time.time() - t0)
        scalars = {'loss': loss, 'lr': lr, 'iterations_per_s': its}
        line = f"epoch {epoch}/{run.epoch_max}, lr {lr:.3e}, train loss {loss:.4f}, {its:.2f} it/s"
        improved = False
        if epoch_val and epoch % epoch_val == 0 and (run.val_loader or run.val_full):
            scores = validate(run, epoch)
            scalars.update(scores)
            if 'val/psnr' in scores:
                line += f", val psnr {scores['val/psnr']:.4f}"
                improved, run.best = scores['val/psnr'] > run.best, max(run.best, scores['val/psnr'])
            if 'val/full_psnr' in scores:
                line += f", {run.cfg['val_full'].get('eval_type') or 'full-image'} psnr {scores['val/full_psnr']:.4f}"
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
        run.log.log(f"done: {run.save_path}")
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
