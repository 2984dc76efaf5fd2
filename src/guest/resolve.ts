import { existsSync } from 'node:fs';
import { PipeworkError } from '../errors';
import { type Guest, NETNS_DIR, checkNetnsName, openGuest } from './index';
import { type DockerContainer, dockerAvailable, dockerSocket, inspectContainer } from './docker';
import { lxcPid } from './lxc';

/** A guest named on the command line, opened, with what we learnt about it. */
export interface NamedGuest {
  guest: Guest;
  /** As the user wrote it (hostname for DHCP, pidfile names). */
  name: string;
  docker?: DockerContainer;
  /** The container's own root filesystem (Docker, LXC), for its /etc/resolv.conf. */
  rootfs?: string;
}

/**
 * A PID, a netns path, a named netns, an LXC container, or a Docker
 * container, tried in that order; opened once, by fd.
 */
export async function resolveGuest(name: string): Promise<NamedGuest> {
  if (!name) throw new PipeworkError('The guest is empty.');
  if (/^\d+$/.test(name)) return { guest: openGuest(Number(name)), name };
  if (name.startsWith('/')) return { guest: openGuest({ path: name }), name };
  if (!name.includes('/') && name !== '.' && name !== '..' && existsSync(`${NETNS_DIR}/${name}`))
    return { guest: openGuest({ netns: checkNetnsName(name) }), name };
  const lxc = lxcPid(name);
  if (lxc) {
    const guest = openGuest(lxc);
    return { guest: { ...guest, label: name }, name, rootfs: `/proc/${lxc}/root` };
  }
  if (!dockerAvailable()) {
    // The original's words when there is no docker at all; a daemon that is installed but not answering here is named as such.
    const { hasProgram }: typeof import('../run') = require('../run');
    if (!hasProgram('docker') && !hasProgram('dockerd')) throw new PipeworkError(`Container ${name} not found, and Docker not installed.`);
    throw new PipeworkError(`Container ${name} not found, and Docker is not running (no socket at ${dockerSocket()}).`);
  }
  const docker = await inspectContainer(name);
  if (!docker) throw new PipeworkError(`Container ${name} not found, and unknown to Docker.`);
  if (docker.pid === 0) throw new PipeworkError('Docker inspect returned invalid PID 0');
  const guest = openGuest(docker.pid);
  return { guest: { ...guest, label: name }, name, docker, rootfs: `/proc/${docker.pid}/root` };
}
