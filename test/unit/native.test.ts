// The addon: namespaces by fd, and the calling thread always back home.
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native';

const here = () => statSync('/proc/thread-self/ns/net').ino;

describe('native addon', () => {
  it('newNetns makes a new netns held only by its fd, and leaves us where we were', () => {
    const home = here();
    const fd = native.newNetns();
    try {
      expect(fstatSync(fd).ino).not.toBe(home);
      expect(here()).toBe(home);
    } finally {
      closeSync(fd);
    }
  });

  it('withNetns runs inside the netns and comes back, also when the callback throws', () => {
    const home = here();
    const fd = native.newNetns();
    try {
      expect(native.withNetns(fd, here)).toBe(fstatSync(fd).ino);
      expect(here()).toBe(home);
      expect(() => native.withNetns(fd, () => { throw new Error('boom'); })).toThrow('boom');
      expect(here()).toBe(home);
    } finally {
      closeSync(fd);
    }
  });

  it('withNetns refuses an fd that is not a netns, without moving', () => {
    const home = here();
    const file = openSync('/proc/self/status', 'r');
    try {
      expect(() => native.withNetns(file, here)).toThrow(expect.objectContaining({ syscall: 'ioctl(NS_GET_NSTYPE)', code: 'ENOTTY' }));
      expect(() => native.withNetns(-1 as number, here)).toThrow(TypeError);
      expect(here()).toBe(home);
    } finally {
      closeSync(file);
    }
  });

  it('openNetnsPid opens a live process netns through a pidfd, and names the failure otherwise', () => {
    const fd = native.openNetnsPid(process.pid);
    try {
      expect(fstatSync(fd).ino).toBe(here());
    } finally {
      closeSync(fd);
    }
    expect(() => native.openNetnsPid(4_000_000)).toThrow(expect.objectContaining({ code: 'ESRCH', errno: 3, syscall: 'pidfd_open' }));
    expect(() => native.openNetnsPid(0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('openNetnsPath accepts netns files only', () => {
    const fd = native.openNetnsPath('/proc/self/ns/net');
    closeSync(fd);
    expect(() => native.openNetnsPath('/etc/hostname')).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl(NS_GET_NSTYPE)' }));
    expect(() => native.openNetnsPath('/nonexistent')).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open' }));
    expect(() => native.openNetnsPath('/proc/self/ns/uts')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('strerror gives the C library text', () => {
    expect(native.strerror(17)).toBe('File exists');
  });
});
