# Installation layout and the Debian package (cpack -G DEB).
#   /usr/bin/splitd, /lib/systemd/system/splitd.{service,socket},
#   /etc/splitd/splitd.conf + splitd-peer.conf (conffiles),
#   postinst: the `splitd` system user and /var/lib/splitd.

# --- files ---
install(FILES ${CMAKE_SOURCE_DIR}/systemd/splitd.service ${CMAKE_SOURCE_DIR}/systemd/splitd.socket
              ${CMAKE_SOURCE_DIR}/systemd/splitd-peer.service
        DESTINATION /lib/systemd/system COMPONENT daemon)
install(FILES ${CMAKE_SOURCE_DIR}/etc/splitd.conf ${CMAKE_SOURCE_DIR}/etc/splitd-peer.conf
        DESTINATION /etc/splitd COMPONENT daemon)

# --- the package ---
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "splitd")
set(CPACK_PACKAGE_VENDOR "splitd")
set(CPACK_PACKAGE_CONTACT "splitd maintainers <splitd@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "split DNN inference daemon for robots, with measured joules per inference")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# Library dependencies from the binary itself (dpkg-shlibdeps), plus what the
# maintainer scripts use.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# procps: /bin/kill for ExecReload; passwd: useradd in postinst
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd, procps")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/systemd/deb/conffiles
    ${CMAKE_SOURCE_DIR}/systemd/deb/postinst
    ${CMAKE_SOURCE_DIR}/systemd/deb/prerm
    ${CMAKE_SOURCE_DIR}/systemd/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
