# One image for the API and the workers. CUDA comes from the torch wheel itself.
FROM python:3.11-slim
WORKDIR /srv/embedlab
COPY pyproject.toml README.md ./
COPY app app
COPY trainer trainer
COPY templates templates
COPY static static
RUN pip install --no-cache-dir .
ENV EMBEDLAB_HOME=/data
EXPOSE 8000
CMD ["embedlab", "serve", "--host", "0.0.0.0", "--workers", "0"]
