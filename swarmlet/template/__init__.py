"""Go ``text/template`` as SwarmKit uses it, in pure Python (workers import it: nothing heavy).

``parse`` and ``execute`` are Go's template engine; ``expand`` is SwarmKit's ``template``
package: the context of a task on its node, the expansion of a container spec, and of a
templated config's or secret's payload (docs/templates.md).
"""

from swarmlet.template.execute import Template, new_template
from swarmlet.template.parse import TemplateError
from swarmlet.template.values import GoStruct

__all__ = ["GoStruct", "Template", "TemplateError", "new_template"]
