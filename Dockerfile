# The FEniCSx environment of `multiscale`, from the same package lists as scripts/env-run.
#
#   docker build -t multiscale .                                  # dolfinx 0.9 (Debian trixie)
#   docker build --build-arg BASE=debian:sid-slim --build-arg FLAVOUR=sid -t multiscale:sid .
#   docker run --rm multiscale mpirun -n 4 multiscale demo homogenization_fibre
#   docker run --rm multiscale python3 -m mpi4py -m pytest tests
ARG BASE=debian:trixie-slim
FROM ${BASE}
ARG FLAVOUR=trixie

ENV DEBIAN_FRONTEND=noninteractive \
    OMPI_ALLOW_RUN_AS_ROOT=1 \
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    MULTISCALE_FLAVOUR=${FLAVOUR} \
    PYTHONDONTWRITEBYTECODE=1

COPY env/ /opt/multiscale/env/
# sid's Release file may have expired on mirrors that serve it frozen: do not reject it for that.
RUN echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/99multiscale \
    && apt-get update \
    && grep -v '^[[:space:]]*#' /opt/multiscale/env/${FLAVOUR}.txt | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/multiscale
COPY . /opt/multiscale
RUN python3 -m pip install --no-deps --no-build-isolation --break-system-packages \
        --root-user-action=ignore -e /opt/multiscale \
    && useradd -m fenics
CMD ["multiscale", "--help"]
