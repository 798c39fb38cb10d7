__version__ = "0.0.1"

import warnings as _warnings
# fastai.layers decorates functions with `torch.jit.script` when it is imported, which recent torch releases deprecate
# with a FutureWarning on every `import fastai`: nothing a medseg user can act on, so that one message is hidden.
_warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
