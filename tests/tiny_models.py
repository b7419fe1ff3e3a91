"""One table of tiny specs for every registered model name: the encoders, the decoder families
(each over a tiny EDSR-baseline unless another encoder is asked for) and the parts they are
built from. tests/test_contract.py runs the model contract over all of them and fails for a
registered name that is missing here: a new family adds its line, nothing else."""
import torch

import models

ENCODERS = {
    'edsr-baseline': {'no_upsampling': True, 'n_resblocks': 1, 'n_feats': 8},
    'edsr': {'no_upsampling': True, 'n_resblocks': 1, 'n_feats': 8},
    'rdn': {'no_upsampling': True, 'G0': 8, 'RDNconfig': 'A'},
    'rcan': {'no_upsampling': True, 'n_resgroups': 1, 'n_resblocks': 1, 'n_feats': 8, 'reduction': 4},
    'swinir': {'embed_dim': 12, 'depths': [2], 'num_heads': [2], 'window_size': 4, 'img_size': 16},
}


def lmmlp(depth):
    return {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': 16, 'hidden_depth': depth,
                                      'mod_scale': True, 'mod_shift': True}}


DECODERS = {  # model args besides encoder_spec (hypernet in/out sizes are set by the models)
    'liif': {'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}},
    'metasr': {},
    'lte': {'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}, 'hidden_dim': 16},
    'lmliif': {'imnet_spec': lmmlp(4), 'hypernet_spec': {'name': 'mlp', 'args': {'out_dim': 1, 'hidden_list': [32]}},
               'mod_input': True},
    'lmlte': {'imnet_spec': lmmlp(3), 'hypernet_spec': {'name': 'mlp', 'args': {'out_dim': 1, 'hidden_list': [32]}},
              'hidden_dim': 16, 'mod_input': True},
    'ciaosr': {name: {'name': 'mlp', 'args': {'hidden_list': [16]}} for name in ('imnet_q', 'imnet_k', 'imnet_v')},
    'lmciaosr': {'imnet_q': lmmlp(3), **{name: {'name': 'mlp', 'args': {'out_dim': 1, 'hidden_list': [16]}}
                                          for name in ('prenet_q', 'hypernet_q', 'imnet_k', 'imnet_v')}},
}
ENCODER_KEY = {'ciaosr': 'encoder', 'lmciaosr': 'encoder'}  # LMF's CiaoSR names its encoder spec `encoder`

PARTS = ('mlp', 'lmmlp')  # registered building blocks of the decoders, not models


def encoder_spec(name='edsr-baseline'):
    return {'name': name, 'args': dict(ENCODERS[name])}


def spec(name, encoder='edsr-baseline', **args):
    return {'name': name, 'args': {ENCODER_KEY.get(name, 'encoder_spec'): encoder_spec(encoder), **DECODERS[name], **args}}


def tiny(name, encoder='edsr-baseline', seed=0, **args):
    torch.manual_seed(seed)
    return models.make(spec(name, encoder, **args))
