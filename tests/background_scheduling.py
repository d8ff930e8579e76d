"""pytest-xdist's ``--dist loadgroup`` with the group of the background runs' readers (``tests/background_runs.py``)
sent to the worker that started those runs, once the runs have ended or when nothing else is left to run.

Only imported by ``tests/conftest.py`` in a session that pytest-xdist distributes with ``--dist loadgroup``. It uses
the work queue of xdist's scope schedulers (``workqueue``, ``assigned_work``, ``_assign_work_unit``,
``_reschedule``, ``_pending_of``; ``pyproject.toml`` pins pytest-xdist's major version).
"""

from __future__ import annotations

from pathlib import Path

from background_runs import GROUP, STARTER
from xdist.scheduler import LoadGroupScheduling


class BackgroundGroupScheduling(LoadGroupScheduling):
    """``--dist loadgroup``, except that the group :data:`GROUP` goes to the worker :data:`STARTER` only, when
    ``flag`` exists (its runs have ended) or nothing else is left; the other workers take the other tests and shut
    down when only that group is left. Without that worker (it crashed), plain ``loadgroup``."""

    def __init__(self, config, log, flag: Path) -> None:
        super().__init__(config, log)
        self.flag = flag

    def _starter(self):
        return next((node for node in self.nodes if node.gateway.id == STARTER), None)

    def schedule(self) -> None:
        starter = self._starter()
        if self.collection is None and starter is not None:
            # the first schedule shuts down the nodes beyond the number of work units, the last ones: not the starter
            self.assigned_work = {starter: self.assigned_work.pop(starter), **self.assigned_work}
        super().schedule()

    def _assign_work_unit(self, node) -> None:
        queue, starter = self.workqueue, self._starter()
        if GROUP in queue and starter is not None:
            if node is starter and (len(queue) == 1 or self.flag.exists()):
                queue.move_to_end(GROUP, last=False)
            elif node is not starter or next(iter(queue)) == GROUP:
                if len(queue) == 1:
                    return  # only the group is left, and it is not this node's
                queue.move_to_end(GROUP)
        super()._assign_work_unit(node)

    def _reschedule(self, node) -> None:
        starter = self._starter()
        if (not node.shutting_down and starter is not None and node is not starter and list(self.workqueue) == [GROUP]
                and self._pending_of(self.assigned_work[node]) == 0):
            node.shutdown()  # nothing left for it: the starter takes the group
            return
        super()._reschedule(node)
