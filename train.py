"""Train a model from a YAML config (official LIIF keys).

    python train.py --config configs/train-div2k/train_edsr-baseline-liif.yaml [--name N] [--set k=v ...] [--resume] [--time-limit T]
    torchrun --nproc_per_node 4 train.py --config ...        # several GPUs (or CPU processes), one machine

Run folder: save/<name> (default '_' + config file name) with config.yaml, log.txt,
tensorboard/, epoch-last.pth (every epoch), epoch-N.pth (every epoch_save) and epoch-best.pth.
"""
import argparse
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
import models
from models.checkpoint import load_checkpoint, model_from_spec, save_checkpoint
from models.evaluate import preview, sampled_psnr, score_image
from utils import dist, rng
from utils.config import ConfigError, get_key, load_config
from utils.device import autocast, resolve_device
from utils.ema import EMA
from utils.errors import UserError, message
from utils.files import atomic_write
from utils.data_norm import DataNorm
from utils.logger import RunLogger
from utils.optim import make_optimizer, make_scheduler
from utils.speedups import SpeedUps
from utils.training import TimeLimit, check_finite, parse_duration, prepare_run_folder, restore_rng

LOSS_CHECK_EVERY = 20   # iterations between loss read-backs (each one waits for the GPU)
PRECISIONS = ('fp32', 'bf16')  # fp16 would need loss scaling


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='YAML training config')
    p.add_argument('--name', help="run folder name under --save-dir (default: '_' + config file name)")
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config value, e.g. --set epoch_max=2 (repeatable; +KEY=VALUE adds a key)')
    p.add_argument('--resume', action='store_true', help="continue the run from its folder's epoch-last.pth")
    p.add_argument('--save-dir', default='save', help='parent folder of run folders (default: save)')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--time-limit', type=parse_duration, metavar='T',
                   help="stop after the last epoch that ends within T (e.g. 540, 9m, 2h) from the start; "
                        "--resume continues the run (for time-limited jobs)")
    p.add_argument('--stop-after', type=int, metavar='EPOCH', help='stop after this epoch; --resume continues the run')
    return p.parse_args()


def main(args):
    start_time = time.time()
    cfg = load_config(args.config, args.set)
    info = dist.setup(resolve_device(args.device))
    device = info.device
    precision = cfg.get('precision', 'fp32')
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    speed = SpeedUps.from_config(cfg, device)
    name = args.name or '_' + os.path.splitext(os.path.basename(args.config))[0]
    save_path = os.path.join(args.save_dir, name)
    prepare_run_folder(save_path, args.resume, info)
    log = RunLogger(save_path, info.is_main)
    if info.is_main:
        text = yaml.safe_dump(cfg, sort_keys=False).encode()
        atomic_write(os.path.join(save_path, 'config.yaml'), lambda f: f.write(text))
    seed = cfg.get('seed', 0)
    if cfg.get('deterministic'):
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cudnn.benchmark = True

    # data: the config's batch_size is the global batch, split evenly across processes
    train_set = make_sr_dataset(cfg, 'train_dataset', seed)
    val_set = make_sr_dataset(cfg, 'val_dataset', seed) if cfg.get('val_dataset') else None
    val_full = make_sr_dataset(cfg, 'val_full', seed) if cfg.get('val_full') else None
    lr_on_device = use_lr_on_device(cfg.get('lr_on_device', 'auto'), train_set, device)
    train_loader = make_loader(train_set, cfg['train_dataset'], info, seed, shuffle=True, num_workers=cfg.get('num_workers'))
    val_loader = make_loader(val_set, cfg['val_dataset'], info, seed, shuffle=False,
                             num_workers=cfg.get('num_workers')) if val_set else None

    # model, optimizer, schedule, EMA; all processes start from the same weights
    rng.seed_all(seed)
    start = cfg.get('resume')
    if args.resume:
        start = os.path.join(save_path, 'epoch-last.pth')
    ckpt = load_checkpoint(start) if start else None
    model_spec = ckpt['model'] if ckpt else get_key(cfg, 'model')
    model = speed.prepare((model_from_spec(model_spec, source=start) if ckpt else models.make(model_spec)).to(device))
    optimizer = make_optimizer(model.parameters(), get_key(cfg, 'optimizer'))
    scheduler, lr_per_iteration = make_scheduler(optimizer, cfg, len(train_loader))
    ema = EMA(model, get_key(cfg, 'ema.decay')) if cfg.get('ema') else None
    epoch_start, iteration, best = 1, 0, -math.inf
    if ckpt:
        if 'optimizer' in ckpt:
            optimizer.load_state_dict(ckpt['optimizer']['sd'])
        epoch_start = ckpt.get('epoch', 0) + 1
        iteration = ckpt.get('iteration', 0)
        best = ckpt.get('best', best)
        if scheduler is not None:
            if 'scheduler' in ckpt:
                scheduler.load_state_dict(ckpt['scheduler'])
            else:  # an official checkpoint: replay the schedule up to where it stopped
                with warnings.catch_warnings():  # "step() before optimizer.step()": intended here
                    warnings.simplefilter('ignore')
                    for _ in range(iteration if lr_per_iteration else epoch_start - 1):
                        scheduler.step()
        if ema is not None and 'ema' in ckpt:
            ema.load_state_dict(ckpt['ema'])
        log.log(f"resumed from {start} (epoch {epoch_start - 1}, iteration {iteration})")
    rng.seed_all(seed + info.rank)
    if ckpt and 'rng' in ckpt:
        restore_rng(ckpt['rng'], info, log)
    core = model
    if info.world_size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)
    model = speed.wrap(model)
    n_params = sum(p.numel() for p in core.parameters())
    log.log(f"model {model_spec['name']}: {n_params:,} parameters; {info.world_size} process(es) on {device.type}, "
            f"global batch {cfg['train_dataset']['batch_size']}, {len(train_loader)} iterations/epoch"
            + (", LR made on the device" if lr_on_device else '') + f"; speed-ups: {speed.describe()}")
    for note in speed.notes:
        log.log(note)

    epoch_max, epoch_val, epoch_save = get_key(cfg, 'epoch_max'), cfg.get('epoch_val'), cfg.get('epoch_save')
    grad_clip = cfg.get('grad_clip')
    norm = DataNorm(cfg.get('data_norm'), device)
    batches = len(train_loader)
    time_limit = TimeLimit(args.time_limit, start_time, info)
    for epoch in range(epoch_start, epoch_max + 1):
        t0 = time.time()
        train_loader.sampler.set_epoch(epoch)
        model.train()
        lr = optimizer.param_groups[0]['lr']
        losses, loss_sum, loss_count = [], 0.0, 0
        bar = tqdm(train_loader, desc=f'epoch {epoch}/{epoch_max}', leave=False, disable=not info.is_main)
        for i, batch in enumerate(bar):
            batch = to_device(batch, device, train_set.inp_size if lr_on_device else None)
            inp, gt = norm.normalise(batch)
            speed.step_begin()
            with autocast(device, precision):
                pred = model(speed.batch_input(inp), batch['coord'], batch['cell'])
            loss = F.l1_loss(pred.float(), gt)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if lr_per_iteration:
                scheduler.step()
            if ema is not None:
                ema.update(core)
            iteration += 1
            losses.append(loss.detach())
            if len(losses) == LOSS_CHECK_EVERY or i + 1 == batches:
                values = check_finite(losses, iteration, epoch, save_path, info)
                loss_sum, loss_count, losses = loss_sum + sum(values), loss_count + len(values), []
                bar.set_postfix(loss=f'{loss_sum / loss_count:.4f}', refresh=False)
        if scheduler is not None and not lr_per_iteration:
            scheduler.step()
        its = batches / (time.time() - t0)
        line = f"epoch {epoch}/{epoch_max}, lr {lr:.3e}, train loss {loss_sum / max(loss_count, 1):.4f}, {its:.2f} it/s"
        scalars = {'loss': loss_sum / max(loss_count, 1), 'lr': lr, 'iterations_per_s': its}

        eval_model = ema.model if ema is not None else core
        improved = False
        if epoch_val and epoch % epoch_val == 0 and (val_loader or val_full):
            if val_loader:
                total, count = dist.all_sum(list(sampled_psnr(eval_model, val_loader, norm, device,
                                                              precision)), info)
                scalars['val/psnr'] = total / count
                line += f", val psnr {total / count:.4f}"
            if val_full:
                scores = [score_image(eval_model, *val_full.pair(i), cfg['val_full'].get('eval_type'), norm, device,
                                      precision)[0]['psnr']
                          for i in range(info.rank, len(val_full), info.world_size)]
                total, count = dist.all_sum([sum(scores), len(scores)], info)
                scalars['val/full_psnr'] = total / count
                line += f", {cfg['val_full'].get('eval_type') or 'full-image'} psnr {total / count:.4f}"
            score = scalars.get('val/full_psnr', scalars.get('val/psnr'))
            improved = score > best
            best = max(best, score)
            if info.is_main:
                log.image('val/lr_sr_hr', preview(eval_model, val_full or val_set, norm, device), epoch)
        log.scalars(scalars, epoch)
        log.log(line + f", {time.time() - t0:.1f} s")

        # best first, then last: a kill in between leaves a last checkpoint that redoes this epoch
        rng_states = dist.all_gather(rng.get_state(), info)
        if info.is_main:
            state = dict(optimizer_spec=cfg['optimizer'], optimizer=optimizer, epoch=epoch, iteration=iteration,
                         best=best, scheduler=scheduler.state_dict() if scheduler else None,
                         ema=ema.state_dict() if ema else None, rng=rng_states, config=cfg)
            if improved:
                save_checkpoint(os.path.join(save_path, 'epoch-best.pth'), model_spec, core, **state)
            save_checkpoint(os.path.join(save_path, 'epoch-last.pth'), model_spec, core, **state)
            if epoch_save and epoch % epoch_save == 0:
                save_checkpoint(os.path.join(save_path, f'epoch-{epoch}.pth'), model_spec, core, **state)
        if epoch < epoch_max and args.stop_after and epoch >= args.stop_after:
            log.log(f"stopped after epoch {epoch}/{epoch_max} (--stop-after); --resume continues")
            break
        if epoch < epoch_max and time_limit.reached(time.time() - t0):
            log.log(f"time limit: stopped after epoch {epoch}/{epoch_max}, {time.time() - start_time:.0f} s from the "
                    f"start (another epoch would end past the limit); --resume continues")
            break
    else:
        log.log(f"done: {save_path}")
    log.close()


if __name__ == '__main__':
    args = parse_args()
    try:
        main(args)
    except UserError as e:
        print(f"train.py: error: {message(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("train.py: interrupted; the run folder's epoch-last.pth is intact (--resume continues)", file=sys.stderr)
        sys.exit(130)
    finally:
        dist.cleanup()
