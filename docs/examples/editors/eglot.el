;;; Emacs with eglot (built in since Emacs 29): a small mode for .saga files and sagalang's server.
(define-derived-mode saga-mode prog-mode "Saga"
  "Major mode for sagalang .saga files."
  (modify-syntax-entry ?# "<" saga-mode-syntax-table)
  (modify-syntax-entry ?\n ">" saga-mode-syntax-table)
  (modify-syntax-entry ?' "\"" saga-mode-syntax-table)
  (setq-local comment-start "# ")
  (setq-local comment-start-skip "#+\\s-*")
  (setq-local indent-tabs-mode nil)
  (setq-local tab-width 4))

(add-to-list 'auto-mode-alist '("\\.saga\\'" . saga-mode))

(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               '(saga-mode "sagalang" "lsp" :initializationOptions (:debounce_ms 50))))

(add-hook 'saga-mode-hook #'eglot-ensure)
;; Format on save through `sagalang fmt`.
(add-hook 'saga-mode-hook
          (lambda () (add-hook 'before-save-hook #'eglot-format-buffer nil t)))
