"""Example swarm plugin task: heart rhythm from a 1-D ECG-like signal (docs/own-data.md).

A plugin is for data the built-in kinds (csv, image-folder) do not read. It implements the
:class:`swarm.training.task.Task` protocol and exposes a factory
``make_task(options, data, site) -> Task``, named by the consortium's task file::

    [task]
    name = "ecg-rhythm"
    kind = "plugin"
    [plugin]
    factory = "swarm_example_task.task:make_task"   # or entry_point = "ecg-rhythm" once installed
    options = { channels = 8 }

Modules: ``task`` (the factory and the task), ``model`` (the network), ``data`` (reading a
site's files), ``synthetic`` (demo hospitals; numpy only, so ``make_data.py`` starts without
torch). Nothing is imported here for the same reason.
"""

__version__ = "0.1.0"
