"""``voxhub tupu ...``: command-line helpers of the Tupu plugin (``keygen``)."""

from __future__ import annotations

from pathlib import Path

import click

from .keys import KeyConfigurationError, write_key_pair

__all__ = ["CONSOLE_CERT_URL", "tupu_group"]

#: Where a Tupu customer uploads the public key that checks their request signatures.
CONSOLE_CERT_URL = "https://console.cloud.tuputech.com/account/cert"


@click.group("tupu")
def tupu_group() -> None:
    """Tupu (图普科技) speech-stream moderation helpers."""


@tupu_group.command("keygen")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--bits", type=click.IntRange(min=2048), default=2048, show_default=True,
              help="RSA key size.")
@click.option("--profile", default="tupu", show_default=True,
              help="Profile name used in the printed configuration hint.")
def keygen(directory: Path, bits: int, profile: str) -> None:
    """Write a fresh RSA key pair for signing Tupu requests into DIRECTORY.

    The private key (tupu_private.pem, mode 0600) stays here; upload the public
    key (tupu_public.pem) in the Tupu console. Existing files are never
    overwritten. The key content is never printed.
    """
    try:
        private_path, public_path = write_key_pair(directory, bits=bits)
    except KeyConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write keys to {directory}: {exc.strerror}") from None
    env = profile.upper().replace("-", "_")
    click.echo(f"private key: {private_path.resolve()} (mode 0600; keep it secret)")
    click.echo(f"public key:  {public_path.resolve()}")
    click.echo("")
    click.echo(f"Upload the public key {public_path.resolve()} at {CONSOLE_CERT_URL}")
    click.echo(f"then configure the [{profile}] profile:")
    click.echo(f'  private_key = "{private_path.resolve()}"   # or VOXHUB_{env}_PRIVATE_KEY')
    click.echo('  public_key = "/path/to/open_tuputech_com_public_key.pem"   '
               f"# Tupu's key, from its SDKs; or VOXHUB_{env}_PUBLIC_KEY")
