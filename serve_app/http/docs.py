"""The API's own documentation, `/docs`, `/redoc` and `/openapi.json`, as routes of the boundary.

Why not FastAPI's built-in ones: those are plain routes outside the boundary, so with API keys
on they answered anyone, and the schema names every route and field (#33). Here they pass
admission like every other route: with keys on they need a key, unless the operator opens them
(the router's `open_docs`); with keys off they are open, as every route is.
"""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from serve_app.http.boundary import BoundaryRoute

DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")

router = APIRouter(route_class=BoundaryRoute, include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} API")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=f"{request.app.title} API")
