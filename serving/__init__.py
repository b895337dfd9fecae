"""lifeboat's JVM-free FastAPI prediction server (``uvicorn --factory serving.app:create_app``)."""
