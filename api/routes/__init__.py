"""The API's routes, one module per resource."""

from api.routes.boards import router as boards_router
from api.routes.matches import router as matches_router

__all__ = ["boards_router", "matches_router"]
