# hmac-file-server — plain make, no generator.
#
#   make            build ./hmac-file-server
#   make run        install missing packages, build, start on 127.0.0.1 (./var)
#   make check      install missing packages, build, run every test
#   make check SAN=1  the same under AddressSanitizer + UBSan
#   make check-long  the slow tests make check skips (HFS_LONG=1): a 1 GiB
#                   upload over a dropping link with each client, minutes
#   make bench      side-by-side benchmark against nginx
#   make power-cut  the power-cut torture, long (POWER_CUTS, default 250)
#   make power-cut-sites  shows each sync is needed: one build with
#                   HFS_SKIP_SYNC, the power-cut checks once per skipped site
#   make install PREFIX=/usr/local DESTDIR=
#                   files, then (without DESTDIR) install-user
#   make install-user  as root: the account, secret and storage directories
#                   the installed config names (etc/install-user.sh)
#   make clean

PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?= 0

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -pthread -I.
LDLIBS  += -lcrypto -lssl -lconfig -lmnl -lhttp_parser -pthread

ifeq ($(SYNC_SITES),1)
# Test-only: HFS_SKIP_SYNC=<site> skips one named sync (lib/util/syncsite.h).
BUILD    := build/sites
CFLAGS   += -DHFS_SYNC_SITES
else ifeq ($(SAN),1)
BUILD    := build/san
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
else
BUILD    := build/rel
endif

# Every module is picked up by its folder: adding a .c needs no Makefile edit.
CORE_SRC := $(sort $(wildcard lib/*/*.c shm/*.c worker/*.c netmon/*.c master/*.c))
CORE_SRC := $(filter-out master/main.c,$(CORE_SRC))
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/*.c))

BIN      := $(BUILD)/hmac-file-server
UNIT     := $(BUILD)/unit-tests
# Helpers the integration tests run (tests/tools/NAME.c -> $(BUILD)/NAME).
TOOLS    := $(patsubst tests/tools/%.c,$(BUILD)/%,$(sort $(wildcard tests/tools/*.c)))

# The power-cut test's FUSE filesystem (tests/powerfs/powerfs.h): a test
# tool, built the same way under SAN=1 or not.
POWERFS_SRC := $(sort $(wildcard tests/powerfs/*.c))
POWERFS  := build/tools/powerfs

# client/c: libhfsclient and hmac-upload (never in the daemon's link).
CLIENT_OBJ  := $(BUILD)/client/c/hfsclient.o $(BUILD)/client/c/logic.o
CLIENT_LIB  := $(BUILD)/libhfsclient.a
CLIENT_BIN  := $(BUILD)/hmac-upload
CLIENT_UNIT := $(BUILD)/client-unit-tests
CLIENT_LIBS := -lcurl -lcrypto

.PHONY: all run check check-long bench install install-user clean deps fuzz client \
        power-cut power-cut-sites
all: $(BIN)
	@ln -sf $(BIN) hmac-file-server

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BIN): $(CORE_OBJ) $(BUILD)/master/main.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(UNIT): $(CORE_OBJ) $(UNIT_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcunit

client: $(CLIENT_LIB) $(CLIENT_BIN)

$(CLIENT_LIB): $(CLIENT_OBJ)
	$(AR) rcs $@ $^

$(CLIENT_BIN): $(BUILD)/client/c/hmac-upload.o $(CLIENT_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LIBS)

$(CLIENT_UNIT): $(BUILD)/client/c/test_logic.o $(CLIENT_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LIBS) -lcunit

$(BUILD)/%: $(BUILD)/tests/tools/%.o $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(POWERFS): $(POWERFS_SRC) tests/powerfs/powerfs.h
	@mkdir -p $(dir $@)
	cc -O2 -g -std=gnu11 -Wall -Wextra -Werror -pthread \
	    $$(pkg-config --cflags fuse3) -o $@ $(POWERFS_SRC) \
	    $$(pkg-config --libs fuse3) -pthread

deps:
	@bash .ci/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p var
	./hmac-file-server -f

check: deps
	@$(MAKE) --no-print-directory $(BIN) $(UNIT) $(TOOLS) $(POWERFS) \
	    $(CLIENT_LIB) $(CLIENT_BIN) $(CLIENT_UNIT)
	@BUILD=$(BUILD) SAN=$(SAN) bash tests/run.sh

# Only the suites with long tests (each skips itself without HFS_LONG=1).
check-long: deps
	@$(MAKE) --no-print-directory $(BIN) $(CLIENT_BIN)
	@BUILD=$(BUILD) SAN=$(SAN) HFS_LONG=1 ONLY='test_client_long' \
	    bash tests/run.sh

POWER_CUTS ?= 250
power-cut: deps
	@$(MAKE) --no-print-directory $(BIN) $(POWERFS)
	@HFS_BIN=$(CURDIR)/$(BIN) HFS_POWER_CUTS=$(POWER_CUTS) \
	    HFS_POWER_CUT_BUDGET=$$(( $(POWER_CUTS) * 20 + 300 )) \
	    ONLY_TEST=test_power_cut_torture \
	    python3 tests/integration/runner.py tests/integration/test_power_cut.py

power-cut-sites: deps
	@$(MAKE) --no-print-directory SYNC_SITES=1 build/sites/hmac-file-server
	@$(MAKE) --no-print-directory $(POWERFS)
	@bash tests/power_cut_sites.sh build/sites/hmac-file-server

# The bench's load and ceiling tools are test tools (tests/tools/*.c).
BENCH_TOOLS := $(addprefix $(BUILD)/,put_driver tcp_ceiling durable_ceiling)
bench: deps
	@$(MAKE) --no-print-directory $(BIN) $(BENCH_TOOLS)
	@BUILD=$(BUILD) bash tests/bench/run.sh

fuzz:
	@bash tests/fuzz/run.sh

install: $(BIN) $(CLIENT_BIN)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)/etc/init.d \
	    $(DESTDIR)/etc/hmac-file-server $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/hmac-file-server
	install -m 0755 $(CLIENT_BIN) $(DESTDIR)$(PREFIX)/bin/hmac-upload
	install -m 0644 docs/hmac-upload.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/hmac-file-server.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 docs/hmac-file-server.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0755 init.d/hmac-file-server $(DESTDIR)/etc/init.d/hmac-file-server
	install -d $(DESTDIR)/etc/rc.d
	install -m 0644 init.d/rc.hmac-file-server $(DESTDIR)/etc/rc.d/rc.hmac-file-server
	install -d $(DESTDIR)/lib/systemd/system
	install -m 0644 etc/hmac-file-server.service $(DESTDIR)/lib/systemd/system/
	install -d $(DESTDIR)/etc/logrotate.d
	install -m 0644 etc/logrotate.hmac-file-server $(DESTDIR)/etc/logrotate.d/hmac-file-server
	@# The sample config's access log goes here; root-owned, as logrotate wants.
	install -d -m 0755 $(DESTDIR)/var/log/hmac-file-server
	@# Never overwrite an operator's config.
	test -e $(DESTDIR)/etc/hmac-file-server/hmac-file-server.conf || \
	    install -m 0640 etc/hmac-file-server.conf $(DESTDIR)/etc/hmac-file-server/
	install -d $(DESTDIR)$(PREFIX)/share/hmac-file-server
	install -m 0755 etc/install-user.sh $(DESTDIR)$(PREFIX)/share/hmac-file-server/
	@# A staged install (packaging) must not create accounts on this machine.
	@if [ -z "$(DESTDIR)" ]; then \
	    $(MAKE) --no-print-directory install-user; \
	else \
	    echo "DESTDIR set: not creating the account, secret and storage;" \
	         "run $(PREFIX)/share/hmac-file-server/install-user.sh on the target"; \
	fi

install-user:
	sh etc/install-user.sh

clean:
	rm -rf build hmac-file-server

-include $(CORE_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BUILD)/master/main.d \
    $(CLIENT_OBJ:.o=.d) $(BUILD)/client/c/hmac-upload.d \
    $(BUILD)/client/c/test_logic.d \
    $(patsubst $(BUILD)/%,$(BUILD)/tests/tools/%.d,$(TOOLS))
