"""Public web pages of the server: alert pages for residents (:mod:`broadcaster.web.public`)
and the SVG area maps they show (:mod:`broadcaster.web.areamap`)."""
