-- Neovim with nvim-lspconfig: .saga files get the saga filetype and sagalang's server.
vim.filetype.add({ extension = { saga = "saga" } })

local lspconfig = require("lspconfig")
local configs = require("lspconfig.configs")

if not configs.sagalang then
  configs.sagalang = {
    default_config = {
      cmd = { "sagalang", "lsp" },
      filetypes = { "saga" },
      root_dir = lspconfig.util.root_pattern("pyproject.toml", ".git"),
      init_options = { debounce_ms = 50 },
      single_file_support = true,
    },
  }
end

lspconfig.sagalang.setup({})

-- Format on save through `sagalang fmt`.
vim.api.nvim_create_autocmd("BufWritePre", {
  pattern = "*.saga",
  callback = function() vim.lsp.buf.format({ async = false }) end,
})
