"""The standard library a script can import.

componentize-py snapshots the interpreter after the app module has been
imported, and the standard library's files are not in the component: a module
exists at run time only if it was imported here, at build time. Add a module
to this list (and to `runtime/tests/all/python.rs` if it matters) to offer it.
Lazily imported helpers (`_strptime`, the `encodings.*` codecs, `pyexpat`) are
listed explicitly because nothing imports them until a script needs them.
Not available in this CPython build: bz2 and lzma (no _bz2/_lzma), so zipfile
and tarfile handle stored and deflate/gzip members only.
"""

# ruff: noqa: F401
import abc
import array
import ast
import base64
import binascii
import bisect
import calendar
import cmath
import codecs
import collections
import collections.abc
import colorsys
import contextlib
import copy
import csv
import dataclasses
import datetime
import decimal
import difflib
import enum
import fnmatch
import fractions
import functools
import glob
import gzip
import hashlib
import heapq
import hmac
import html
import html.parser
import io
import itertools
import json
import json.decoder
import json.encoder
import keyword
import linecache
import locale
import math
import numbers
import operator
import os
import os.path
import pathlib
import pprint
import random
import re
import secrets
import shlex
import shutil
import sqlite3
import sqlite3.dbapi2
import stat
import statistics
import string
import struct
import sys
import tarfile
import tempfile
import textwrap
import time
import tokenize
import traceback
import types
import typing
import unicodedata
import urllib.parse
import uuid
import warnings
import weakref
import xml.dom.minidom
import xml.etree.ElementTree
import xml.parsers.expat
import xml.sax
import xml.sax.saxutils
import zipfile
import zlib

# Imported lazily by the modules above, so imported here or never available.
import _strptime
import encodings.ascii
import encodings.cp1252
import encodings.cp437
import encodings.idna
import encodings.latin_1
import encodings.utf_16
import encodings.utf_16_be
import encodings.utf_16_le
import encodings.utf_32
import encodings.utf_8
import encodings.utf_8_sig

# Warm the lazy paths that compile or load on first use, so their modules exist.
datetime.datetime.strptime("2024-01-31", "%Y-%m-%d")
time.strptime("2024", "%Y")
re.compile(r"\d+").findall("1 2")
decimal.Decimal("1.10").quantize(decimal.Decimal("0.1"))
xml.etree.ElementTree.fromstring("<a><b>1</b></a>")
"é".encode("cp1252").decode("latin-1")
