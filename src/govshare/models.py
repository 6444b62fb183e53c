"""Every table of the hub, imported in one place for Alembic and the test suite."""

from govshare.basedata import models as basedata_models
from govshare.catalog import models as catalog_models
from govshare.collab import models as collab_models
from govshare.compare import models as compare_models
from govshare.db import Base
from govshare.documents import models as documents_models
from govshare.evaluation import models as evaluation_models
from govshare.exchange import models as exchange_models
from govshare.opendata import models as opendata_models
from govshare.ops import models as ops_models
from govshare.quality import models as quality_models
from govshare.security import models as security_models
from govshare.sharing import models as sharing_models

metadata = Base.metadata

__all__ = [
    "basedata_models",
    "catalog_models",
    "collab_models",
    "compare_models",
    "documents_models",
    "evaluation_models",
    "exchange_models",
    "metadata",
    "opendata_models",
    "ops_models",
    "quality_models",
    "security_models",
    "sharing_models",
]
