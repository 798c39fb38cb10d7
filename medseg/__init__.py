__version__ = "0.0.1"

import sys as _sys

class _FastaiLayersWithoutScript:
    """Import fastai.layers without its import-time `torch.jit.script` calls.

    fastai.layers compiles four activation helpers (SwishJit, MishJit) with `torch.jit.script` when it is imported,
    which every `import fastai` then reports as deprecated (a FutureWarning of recent torch releases). medseg never
    uses those helpers, so while fastai.layers is executed `torch.jit.script` returns the function unchanged: they
    stay plain (eager) PyTorch functions, nothing is compiled, and no warning is caused. Nothing else is changed.
    """
    def find_spec(self, name, path=None, target=None):
        if name != 'fastai.layers': return None
        for finder in _sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'): continue
            spec = finder.find_spec(name, path, target)
            if spec is not None: break
        else: return None
        run = spec.loader.exec_module
        def exec_module(module):
            import torch.jit
            script = torch.jit.script
            torch.jit.script = lambda obj=None, *args, **kwargs: obj
            try: run(module)
            finally: torch.jit.script = script
        spec.loader.exec_module = exec_module
        return spec

if 'fastai.layers' not in _sys.modules and not any(isinstance(f, _FastaiLayersWithoutScript) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _FastaiLayersWithoutScript())
