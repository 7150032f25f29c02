FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir -e . 
COPY . .
ENV DJANGO_SETTINGS_MODULE=nexus_project.settings.production
RUN SECRET_KEY=build DATABASE_URL=sqlite:////tmp/build.sqlite3 REDIS_URL=redis://127.0.0.1:6379/0 \
    python manage.py collectstatic --noinput
EXPOSE 8000
