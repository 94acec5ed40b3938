using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using RayClient.Packaging;

namespace RayClient.Tests.RuntimeEnvs;

public sealed class PackagingTests
{
    private static readonly PackagingOptions s_noDefaults = new() { DefaultExcludes = [] };

    [Fact]
    public void GetUriForDirectory_NestedAndEmptyFolders_MatchesPythonReference()
    {
        using var tree = new TempTree()
            .File("main.py", "print('hi')\n")
            .File("a/b/c.txt", "deep")
            .Bytes("a/b/blob.bin", Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray())
            .File("a/other.txt", "other")
            .Dir("a/empty")
            .Dir("empty_top")
            .File("unicodé/naïve.txt", "ü");

        AssertSameAsPython(tree, [], s_noDefaults, includeParentDir: false);
    }

    [Fact]
    public void GetUriForDirectory_UserExcludes_MatchesPythonReference()
    {
        using var tree = new TempTree()
            .File("keep.py", "x = 1\n")
            .File("run.log", "log")
            .File("nested/deep/trace.log", "log")
            .File("build/out.o", "obj")
            .File("nested/build/kept.txt", "anchored pattern does not match below the root")
            .File("data/big.csv", "1,2,3")
            .Dir("data/sub")
            .File("sub/secret.txt", "s")
            .File("other/secret.txt", "kept: pattern is anchored to sub/");

        AssertSameAsPython(tree, ["*.log", "/build", "data/", "sub/secret.txt"], s_noDefaults, includeParentDir: false);
    }

    [Fact]
    public void GetUriForDirectory_GitignoreInSubfolder_MatchesPythonReference()
    {
        using var tree = new TempTree()
            .File("top.tmp", "not covered: the .gitignore is in sub/")
            .File("sub/.gitignore", "# temp files\n*.tmp\n!keep.tmp\n\ncache/\n")
            .File("sub/x.tmp", "x")
            .File("sub/keep.tmp", "kept by negation")
            .File("sub/cache/entry", "c")
            .File("sub/deeper/z.tmp", "z")
            .File("sub/deeper/z.txt", "z")
            .File("hidden/.gitignore", ".*\n")
            .File("hidden/visible.txt", "the whole folder goes: its own .gitignore matches \".\"");

        AssertSameAsPython(tree, [], s_noDefaults, includeParentDir: false);
    }

    [Fact]
    public void GetUriForDirectory_RayignoreWithGitignoreDisabled_MatchesPythonReference()
    {
        using var tree = new TempTree()
            .File(".gitignore", "ignored_by_git.txt\n")
            .File("ignored_by_git.txt", "uploaded: .gitignore handling is off")
            .File(".rayignore", "secret.txt\nmodels/\n")
            .File("secret.txt", "s")
            .File("models/weights.bin", "w")
            .File("lib/.rayignore", "*.pyc\n")
            .File("lib/mod.py", "m")
            .File("lib/mod.pyc", "c");

        var options = s_noDefaults with { IncludeGitignore = false };
        AssertSameAsPython(tree, [], options, includeParentDir: false);

        // With .gitignore on, the URI changes (ignored_by_git.txt drops out).
        var withGitignore = Packaging.Packaging.GetUriForDirectory(tree.Root, [], s_noDefaults);
        Assert.NotEqual(Packaging.Packaging.GetUriForDirectory(tree.Root, [], options), withGitignore);
        Assert.Equal(PythonReference.Compute(tree.Root, [], includeGitignore: true).Uri, withGitignore);
    }

    [Fact]
    public void GetUriForDirectory_DefaultExcludes_MatchesPythonReference()
    {
        using var tree = new TempTree()
            .File("app.py", "a")
            .File(".git/HEAD", "ref: refs/heads/main\n")
            .File(".git/objects/ab/cdef", "blob")
            .File("pkg/__pycache__/mod.cpython-311.pyc", "pyc")
            .File("pkg/mod.py", "m")
            .File("venv/bin/python", "#!")
            .File(".venv/lib/site.py", "s")
            .File("venvy/kept.txt", "only exact names are excluded");

        AssertSameAsPython(tree, ["*.md"], PackagingOptions.Default, includeParentDir: false);
    }

    [Fact]
    public void CreateZip_IncludeParentDir_PrefixesModuleName()
    {
        using var tree = new TempTree()
            .File("mymod/__init__.py", "")
            .File("mymod/core.py", "def f(): return 1\n")
            .Dir("mymod/resources");

        AssertSameAsPython(tree, [], s_noDefaults, includeParentDir: true, root: tree.Path("mymod"));
    }

    [Fact]
    public void GetUriForDirectory_DotStarExcludesRoot_ReturnsInitialHash()
    {
        using var tree = new TempTree().File("script.py", "print(1)").File(".env", "A=1");

        Assert.Equal("gcs://_ray_pkg_3030303030303030.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, [".*"], s_noDefaults));
    }

    [Fact]
    public void GetUriForDirectory_EmptyDirectory_HashesOnlyTheRoot()
    {
        using var tree = new TempTree();

        // "00000000" XOR SHA-1(".")[0..8]
        Assert.Equal("gcs://_ray_pkg_0a62fe483960e4e9.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, [], s_noDefaults));
    }

    [Fact]
    public void GetUriForDirectory_OneFile_HashesPathAndContent()
    {
        using var tree = new TempTree().File("a.txt", "hello");

        // "00000000" ^ SHA-1(".") ^ SHA-1("a.txt" + "hello"), first 8 bytes
        Assert.Equal("gcs://_ray_pkg_931181291bc7ac88.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, [], s_noDefaults));
    }

    [Fact]
    public void GetUriForDirectory_TrailingSlashPattern_KeepsTheDirectoryItself()
    {
        using var tree = new TempTree().File("d/x.txt", "x");

        // "d/" matches only d/<something>: "d" itself is still hashed.
        Assert.Equal("gcs://_ray_pkg_3654c67ef62ef28f.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, ["d/"], s_noDefaults));

        // "d" prunes the directory: only the root is hashed.
        Assert.Equal("gcs://_ray_pkg_0a62fe483960e4e9.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, ["d"], s_noDefaults));
        Assert.Equal("gcs://_ray_pkg_b872828c5bc1ea03.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, [], s_noDefaults));
    }

    [Fact]
    public void GetUriForDirectory_DefaultExcludesOn_ChangesUriOnlyWhenSuchDirectoriesExist()
    {
        using var tree = new TempTree().File("a.txt", "hello");
        Assert.Equal(
            Packaging.Packaging.GetUriForDirectory(tree.Root, [], s_noDefaults),
            Packaging.Packaging.GetUriForDirectory(tree.Root, [], PackagingOptions.Default));

        tree.File(".git/HEAD", "x");
        Assert.Equal("gcs://_ray_pkg_931181291bc7ac88.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, [], PackagingOptions.Default));
        Assert.NotEqual("gcs://_ray_pkg_931181291bc7ac88.zip", Packaging.Packaging.GetUriForDirectory(tree.Root, [], s_noDefaults));
    }

    [Fact]
    public void GetUriForDirectory_MissingDirectory_ThrowsNamingThePath()
    {
        var missing = Path.Combine(Path.GetTempPath(), "rayclient_missing_" + Guid.NewGuid().ToString("N"));

        var e = Assert.Throws<RayRuntimeEnvException>(() => Packaging.Packaging.GetUriForDirectory(missing, [], s_noDefaults));
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GetUriForPyFile_SingleModule_HashesFileNameAndContent()
    {
        using var tree = new TempTree().File("mod.py", "print(1)\n");

        Assert.Equal("gcs://_ray_pkg_0ec8ae7fac4001e4.zip", Packaging.Packaging.GetUriForPyFile(tree.Path("mod.py")));
    }

    [Fact]
    public void GetUriForZipFile_LocalZip_UsesSha1OfBytes()
    {
        using var tree = new TempTree().Bytes("pkg.zip", [1, 2, 3, 4]);
        var expected = "gcs://_ray_pkg_" + Convert.ToHexStringLower(SHA1.HashData(new byte[] { 1, 2, 3, 4 })) + ".zip";

        Assert.Equal(expected, Packaging.Packaging.GetUriForZipFile(tree.Path("pkg.zip")));
        Assert.Equal("gcs://my_pkg-1.0-py3-none-any.whl", Packaging.Packaging.GetUriForWheel(tree.Path("my_pkg-1.0-py3-none-any.whl")));
    }

    [Fact]
    public void CreateZip_FileOlderThan1980_ClampsTimestamp()
    {
        using var tree = new TempTree().File("old.txt", "old");
        File.SetLastWriteTime(tree.Path("old.txt"), new DateTime(1970, 1, 2, 0, 0, 0, DateTimeKind.Local));
        using var zip = new MemoryStream();

        Packaging.Packaging.CreateZip(tree.Root, [], zip, includeParentDir: false, s_noDefaults, null, CancellationToken.None);

        zip.Position = 0;
        using var archive = new ZipArchive(zip, ZipArchiveMode.Read);
        Assert.Equal(1980, Assert.Single(archive.Entries).LastWriteTime.Year);
    }

    [Fact]
    public void CreateZip_SinglePyFile_HasOneEntryNamedAfterTheFile()
    {
        using var tree = new TempTree().File("mod.py", "print(1)\n");
        using var zip = new MemoryStream();

        Packaging.Packaging.CreateZip(tree.Path("mod.py"), [], zip, includeParentDir: false, s_noDefaults, null, CancellationToken.None);

        zip.Position = 0;
        using var archive = new ZipArchive(zip, ZipArchiveMode.Read);
        Assert.Equal(["mod.py"], archive.Entries.Select(e => e.FullName));
    }

    [Fact]
    public void CreateZip_PackageAtLimit_ThrowsNamingSizeAndLimit()
    {
        using var tree = new TempTree().Bytes("big.bin", new byte[4096]).File("small.txt", "s");
        using var zip = new MemoryStream();
        var options = s_noDefaults with { MaxPackageSizeBytes = 2048 };

        var e = Assert.Throws<RayRuntimeEnvException>(
            () => Packaging.Packaging.CreateZip(tree.Root, [], zip, includeParentDir: false, options, null, CancellationToken.None));

        Assert.Contains("Package size", e.Message, StringComparison.Ordinal);
        Assert.Contains("maximum size of 0.00MiB", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateZip_LargeFile_ReturnsWarningAndReportsProgress()
    {
        using var tree = new TempTree().Bytes("big.bin", new byte[3000]).File("small.txt", "s");
        using var zip = new MemoryStream();
        var reported = new List<long>();
        var options = s_noDefaults with { FileSizeWarningBytes = 2000 };

        var result = Packaging.Packaging.CreateZip(tree.Root, [], zip, includeParentDir: false, options, new SyncProgress(reported), CancellationToken.None);

        var warning = Assert.Single(result.Warnings);
        Assert.Contains("big.bin", warning, StringComparison.Ordinal);
        Assert.Equal(2, result.FileCount);
        Assert.Equal(3001, reported[^1]);
        Assert.Equal(zip.Length, result.SizeBytes);
    }

    [Fact]
    public void CreateZip_NonSeekableOutput_ProducesReadableArchive()
    {
        using var tree = new TempTree().File("a/b.txt", "b").Dir("e");
        var path = Path.Combine(tree.Root, "..", Path.GetFileName(tree.Root) + ".zip");
        try
        {
            using (var file = File.Create(path))
            {
                using var forwardOnly = new ForwardOnlyStream(file);
                Packaging.Packaging.CreateZip(tree.Root, [], forwardOnly, includeParentDir: false, s_noDefaults, null, CancellationToken.None);
            }

            var listing = PythonReference.Compute(tree.Root, [], zipPath: path);
            Assert.Equal(listing.Entries, listing.Zip!.Select(z => z.Name).Order(StringComparer.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void GetUriForDirectory_SymlinkLoop_Throws()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var tree = new TempTree().File("a/x.txt", "x");
        Directory.CreateSymbolicLink(tree.Path("a/loop"), tree.Path("a"));

        Assert.Throws<RayRuntimeEnvException>(() => Packaging.Packaging.GetUriForDirectory(tree.Root, [], s_noDefaults));
    }

    [Fact]
    public void GetUriForDirectory_SymlinkedFile_IsFollowed()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var tree = new TempTree().File("real.txt", "content").File("outside/target.txt", "linked");
        using var root = new TempTree().File("real.txt", "content");
        File.CreateSymbolicLink(root.Path("link.txt"), tree.Path("outside/target.txt"));

        AssertSameAsPython(root, [], s_noDefaults, includeParentDir: false);
    }

    /// <summary>Hashes and zips with C#, then checks URI, entry list, stored compression and content against Python.</summary>
    private static void AssertSameAsPython(TempTree tree, string[] excludes, PackagingOptions options, bool includeParentDir, string? root = null)
    {
        root ??= tree.Root;
        var uri = Packaging.Packaging.GetUriForDirectory(root, excludes, options);
        var zipPath = Path.Combine(Path.GetTempPath(), $"rayclient_zip_{Guid.NewGuid():N}.zip");
        try
        {
            using (var zip = File.Create(zipPath))
            {
                Packaging.Packaging.CreateZip(root, excludes, zip, includeParentDir, options, null, CancellationToken.None);
            }

            var allExcludes = options.DefaultExcludes.Concat(excludes).ToList();
            var prefix = includeParentDir ? Path.GetFileName(root) : null;
            var python = PythonReference.Compute(root, allExcludes, options.IncludeGitignore, zipPath, prefix);

            Assert.Equal(python.Uri, uri);
            Assert.Equal(python.Entries, python.Zip!.Select(z => z.Name).Order(StringComparer.Ordinal));
            Assert.All(python.Zip!, z => Assert.Equal(0, z.CompressType)); // ZIP_STORED
            foreach (var (name, hex) in python.Contents!)
            {
                var relative = prefix is null ? name : name[(prefix.Length + 1)..];
                Assert.Equal(Convert.ToHexStringLower(File.ReadAllBytes(Path.Combine(root, relative))), hex);
            }
        }
        finally
        {
            File.Delete(zipPath);
        }
    }

    private sealed class SyncProgress(List<long> values) : IProgress<long>
    {
        public void Report(long value) => values.Add(value);
    }

    private sealed class ForwardOnlyStream(Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    }
}

public sealed class GitWildMatchTests
{
    [Theory]
    [InlineData(".*", ".", true)]
    [InlineData(".*", "a/.hidden", true)]
    [InlineData("*.log", "x.log", true)]
    [InlineData("*.log", "deep/er/x.log", true)]
    [InlineData("*.log", "x.logs", false)]
    [InlineData("dir/", "dir", false)]
    [InlineData("dir/", "dir/file", true)]
    [InlineData("dir/", "a/dir/file", true)]
    [InlineData("dir", "dir", true)]
    [InlineData("dir", "dir/file", true)]
    [InlineData("/top", "top", true)]
    [InlineData("/top", "a/top", false)]
    [InlineData("a/b", "a/b", true)]
    [InlineData("a/b", "x/a/b", false)]
    [InlineData("a/**/b", "a/b", true)]
    [InlineData("a/**/b", "a/x/y/b", true)]
    [InlineData("**/foo", "x/foo", true)]
    [InlineData("a/*", "a/b", true)]
    [InlineData("a/*", "a", false)]
    [InlineData("file?.txt", "file1.txt", true)]
    [InlineData("file?.txt", "file10.txt", false)]
    [InlineData("[!a]*.py", "b.py", true)]
    [InlineData("[!a]*.py", "a.py", false)]
    [InlineData("[a-c]x", "bx", true)]
    [InlineData("\\#not-comment", "#not-comment", true)]
    [InlineData("  spaced.txt  ", "spaced.txt", true)]
    [InlineData("**", "anything/at/all", true)]
    public void Parse_Pattern_MatchesLikePathspec(string pattern, string path, bool expected)
    {
        var parsed = GitWildMatchPattern.Parse(pattern);

        Assert.NotNull(parsed);
        Assert.Equal(expected, parsed.IsMatch(path));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("# comment")]
    [InlineData("/")]
    public void Parse_NoOpLine_ReturnsNull(string line)
    {
        Assert.Null(GitWildMatchPattern.Parse(line));
    }

    [Fact]
    public void Matches_LastMatchingPatternWins_NegationReincludes()
    {
        var spec = GitWildMatchSpec.FromLines(["*.tmp", "!keep.tmp"], "test");

        Assert.True(spec.Matches("x.tmp"));
        Assert.False(spec.Matches("keep.tmp"));
        Assert.False(spec.Matches("x.txt"));
    }

    [Fact]
    public void Parse_TranslatesLikeVendoredPathspec()
    {
        Assert.Equal("^(?:.+/)?dir/.*$", GitWildMatchPattern.Parse("dir/")!.RegexText);
        Assert.Equal(@"^(?:.+/)?\.[^/]*(?:/.*)?$", GitWildMatchPattern.Parse(".*")!.RegexText);
        Assert.Equal("^a(?:/.+)?/b(?:/.*)?$", GitWildMatchPattern.Parse("a/**/b")!.RegexText);
    }
}
